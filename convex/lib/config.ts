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
  STEP_DEADLINE_MS_DEPLOYAPP: int(1).default(15 * 60_000),
  ENCRYPTION_KEY: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, "must be 32 bytes, base64-encoded (openssl rand -base64 32)")
    .optional(),
  SUPPORT_URL: z.string().url().optional(),
});

export type Config = z.infer<typeof EnvSchema>;
export type ProviderModeName = z.infer<typeof ProviderMode>;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Convex env vars cannot be unset to "" in some tools; treat empty as absent.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")} (${issue.message})`);
  return fail("CONFIG_INVALID", `invalid environment: ${problems.join(", ")}`);
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

export function providerMode(config: Config, provider: keyof typeof MODE_OVERRIDES): ProviderModeName {
  return config[MODE_OVERRIDES[provider]] ?? config.PROVIDER_MODE;
}
