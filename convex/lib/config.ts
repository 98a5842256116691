// The only module that reads process.env. Every entry point calls loadConfig()
// once and passes the typed result down. Error messages name variables, never values.
import { z } from "zod";
import { fail } from "./errors";
import type { RetryPolicy } from "./backoff";

const ProviderMode = z.enum(["sandbox", "live"]);
const int = (min: number) => z.coerce.number().int().min(min);

export const EnvSchema = z.object({
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
  ADMIN_API_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  PROVIDER_MODE: ProviderMode.default("sandbox"),
  PROVIDER_MODE_CONVEX: ProviderMode.optional(),
  PROVIDER_MODE_WORKOS: ProviderMode.optional(),
  PROVIDER_MODE_CLOUDFLARE: ProviderMode.optional(),
  PROVIDER_MODE_GITHUB: ProviderMode.optional(),
  PROVIDER_MODE_STRIPE: ProviderMode.optional(),
  PROVIDER_MODE_RESEND: ProviderMode.optional(),
  RESOURCE_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,19}$/, "must be lower-case letters, digits or '-', starting with a letter, at most 20")
    .default("brain"),
  DEFAULT_PLAN: z.string().regex(/^[a-z0-9_-]{1,40}$/).default("starter"),
  RETRY_MAX_ATTEMPTS: int(1).max(20).default(5),
  RETRY_BASE_DELAY_MS: int(0).default(1_000),
  RETRY_MAX_DELAY_MS: int(0).default(30_000),
  RETRY_JITTER: z.coerce.number().min(0).max(1).default(0.2),
  SANDBOX_LATENCY_MS: int(0).max(600_000).default(200),
  /** Share of sandbox provider calls that fail transiently at random (chaos rehearsals). */
  SANDBOX_FAULT_RATE: z.coerce.number().min(0).max(1).default(0),
  SANDBOX_FAULT_SEED: int(0).default(1),
  // How long a running step may go without reporting before the watchdog re-dispatches it;
  // STEP_DEADLINE_MS_<STEP> overrides one step kind (deployApp waits for its workflow run).
  STEP_DEADLINE_MS: int(1).default(5 * 60_000),
  STEP_DEADLINE_MS_CONVEXPROJECT: int(1).optional(),
  STEP_DEADLINE_MS_WORKOSORG: int(1).optional(),
  STEP_DEADLINE_MS_PAGESPROJECT: int(1).optional(),
  STEP_DEADLINE_MS_WORKOSUSER: int(1).optional(),
  STEP_DEADLINE_MS_STRIPEENDPOINT: int(1).optional(),
  STEP_DEADLINE_MS_CONFIGUREBACKEND: int(1).optional(),
  STEP_DEADLINE_MS_CONFIGURESITE: int(1).optional(),
  STEP_DEADLINE_MS_DEPLOYAPP: int(1).default(15 * 60_000),
  STEP_DEADLINE_MS_VALIDATE: int(1).optional(),
  STEP_DEADLINE_MS_ACTIVATE: int(1).optional(),
  /** Consecutive transient failures of a provider that open its circuit. */
  CIRCUIT_FAILURE_THRESHOLD: int(1).default(5),
  /** How long an open circuit waits before one probe attempt. */
  CIRCUIT_COOLDOWN_MS: int(0).default(30_000),
  /** Failures a step may wait out behind an open circuit before they count against its budget. */
  CIRCUIT_MAX_WAITS: int(0).default(20),
  /** Delay before a job that failed for good has its partial resources removed (0: at once). */
  CLEANUP_DELAY_MS: int(0).default(24 * 60 * 60_000),
  ENCRYPTION_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, "must be 32 bytes, base64-encoded (openssl rand -base64 32)")
    .optional(),
  SUPPORT_URL: z.string().url().optional(),

  // Live providers (issue #3). Credentials are checked only for providers in live mode.
  CONVEX_TEAM_ID: z.string().regex(/^\d+$/, "must be the numeric team id").optional(),
  CONVEX_TEAM_TOKEN: z.string().min(1).optional(),
  CONVEX_MANAGEMENT_API_URL: z.string().url().default("https://api.convex.dev/v1"),
  WORKOS_API_KEY: z.string().regex(/^sk_/, "must start with sk_").optional(),
  WORKOS_API_URL: z.string().url().default("https://api.workos.com"),
  WORKOS_CLIENT_ID: z.string().regex(/^client_/, "must start with client_").optional(),
  CLOUDFLARE_API_TOKEN: z.string().min(1).optional(),
  CLOUDFLARE_ACCOUNT_ID: z.string().regex(/^[0-9a-f]{32}$/i, "must be the 32-hex-digit account id").optional(),
  CLOUDFLARE_API_URL: z.string().url().default("https://api.cloudflare.com/client/v4"),
  CLOUDFLARE_PAGES_PROJECT_LIMIT: int(1).default(100),
  GITHUB_TOKEN: z.string().min(1).optional(),
  GITHUB_REPOSITORY: z.string().regex(/^[\w.-]+\/[\w.-]+$/, "must be owner/name").optional(),
  GITHUB_API_URL: z.string().url().default("https://api.github.com"),
  GITHUB_WORKFLOW_REF: z.string().min(1).default("main"),
  PROVISION_CALLBACK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_/, "must start with sk_ or rk_").optional(),
  STRIPE_API_URL: z.string().url().default("https://api.stripe.com"),
  RESEND_API_KEY: z.string().regex(/^re_/, "must start with re_").optional(),
  RESEND_API_URL: z.string().url().default("https://api.resend.com"),
  EMAIL_FROM: z.string().min(3).optional(),
  /** Set by Convex on every deployment: where this deployment serves HTTP actions. */
  CONVEX_SITE_URL: z.string().url().optional(),
  WORKOS_USER_CACHE_TTL_MS: int(0).default(10 * 60_000),
  PROVIDER_TIMEOUT_MS: int(100).default(30_000),
  // Request budgets (requests per second) and concurrency per provider; defaults sit under each
  // provider's documented limit (see README).
  RATE_LIMIT_CONVEX_RPS: z.coerce.number().positive().default(20),
  RATE_LIMIT_WORKOS_RPS: z.coerce.number().positive().default(50),
  RATE_LIMIT_CLOUDFLARE_RPS: z.coerce.number().positive().default(3.9),
  RATE_LIMIT_GITHUB_RPS: z.coerce.number().positive().default(1.3),
  RATE_LIMIT_STRIPE_RPS: z.coerce.number().positive().default(20),
  RATE_LIMIT_RESEND_RPS: z.coerce.number().positive().default(4),
  CONCURRENCY_CONVEX: int(1).max(100).default(10),
  CONCURRENCY_WORKOS: int(1).max(100).default(10),
  CONCURRENCY_CLOUDFLARE: int(1).max(100).default(5),
  CONCURRENCY_GITHUB: int(1).max(100).default(5),
  CONCURRENCY_STRIPE: int(1).max(100).default(10),
  CONCURRENCY_BRAIN: int(1).max(100).default(10),
  /** Jobs running at once; more wait in `queued` and start as running ones finish. */
  MAX_ACTIVE_JOBS: int(1).max(10_000).default(25),
});

export type Config = z.infer<typeof EnvSchema>;
export type ProviderModeName = z.infer<typeof ProviderMode>;

/** What each live provider needs; a missing one is reported by name before any job starts. */
export const LIVE_CREDENTIALS = {
  convex: ["CONVEX_TEAM_ID", "CONVEX_TEAM_TOKEN"],
  workos: ["WORKOS_API_KEY", "WORKOS_CLIENT_ID"],
  cloudflare: ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"],
  github: ["GITHUB_TOKEN", "GITHUB_REPOSITORY", "PROVISION_CALLBACK_SECRET"],
  stripe: ["STRIPE_SECRET_KEY"],
  resend: ["RESEND_API_KEY", "EMAIL_FROM"],
} as const satisfies Record<string, readonly (keyof Config)[]>;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Convex env vars cannot be unset to "" in some tools; treat empty as absent.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")} (${issue.message})`);
    return fail("CONFIG_INVALID", `invalid environment: ${problems.join(", ")}`);
  }
  const config = parsed.data;
  const missing: string[] = [];
  for (const [provider, names] of Object.entries(LIVE_CREDENTIALS)) {
    if (providerMode(config, provider as keyof typeof LIVE_CREDENTIALS) !== "live") continue;
    for (const name of names) if (config[name] === undefined) missing.push(`${name} (needed by live ${provider})`);
  }
  const anyLive = Object.keys(LIVE_CREDENTIALS).some(
    (provider) => providerMode(config, provider as keyof typeof LIVE_CREDENTIALS) === "live",
  );
  // Live secrets at rest need a real key, not the sandbox's published one.
  if (anyLive && config.ENCRYPTION_KEY === undefined) missing.push("ENCRYPTION_KEY (needed in live mode)");
  if (missing.length > 0) return fail("CONFIG_INVALID", `missing environment: ${missing.join(", ")}`);
  return config;
}

/** The deadline of one attempt of `step`: its own override, else STEP_DEADLINE_MS. */
export function stepDeadlineMs(config: Config, step: string): number {
  const override = config[`STEP_DEADLINE_MS_${step.toUpperCase()}` as keyof Config];
  return typeof override === "number" ? override : config.STEP_DEADLINE_MS;
}

export function retryPolicy(config: Config): RetryPolicy {
  return {
    maxAttempts: config.RETRY_MAX_ATTEMPTS,
    baseDelayMs: config.RETRY_BASE_DELAY_MS,
    maxDelayMs: config.RETRY_MAX_DELAY_MS,
    jitter: config.RETRY_JITTER,
  };
}

const MODE_OVERRIDES = {
  convex: "PROVIDER_MODE_CONVEX",
  workos: "PROVIDER_MODE_WORKOS",
  cloudflare: "PROVIDER_MODE_CLOUDFLARE",
  github: "PROVIDER_MODE_GITHUB",
  stripe: "PROVIDER_MODE_STRIPE",
  resend: "PROVIDER_MODE_RESEND",
} as const;

export type LiveProviderName = keyof typeof MODE_OVERRIDES;

export function providerMode(config: Config, provider: LiveProviderName): ProviderModeName {
  return config[MODE_OVERRIDES[provider]] ?? config.PROVIDER_MODE;
}
