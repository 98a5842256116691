// The only module that reads process.env. Every entry point calls loadConfig()
// once and passes the typed result down. Error messages name variables, never values.
import { z } from "zod";
import { ALL_STEPS, PROVIDERS, PROVIDERS_IN_USE, LIVE_PROVIDERS, STEPS, type LiveProviderName } from "../registry";
import type { StepName } from "./validators";
import { fail } from "./errors";
import type { RetryPolicy } from "./backoff";
import { KEY_ID_PATTERN } from "./crypto";

const ProviderMode = z.enum(["sandbox", "live"]);
const DAY_MS = 24 * 60 * 60_000;
const int = (min: number) => z.coerce.number().int().min(min);

// Per-provider and per-step settings come from the registry: their variable names and defaults.
type Registry = typeof PROVIDERS;
type ConcurrencyVariable = Registry[keyof Registry]["pool"]["concurrency"]["variable"];
type RateVariable = { [P in keyof Registry]: Registry[P] extends { rate: { variable: infer V extends string } } ? V : never }[keyof Registry];
type ModeVariable = { [P in keyof Registry]: Registry[P] extends { modeVariable: infer V extends string } ? V : never }[keyof Registry];
type DeadlineVariable = `STEP_DEADLINE_MS_${Uppercase<StepName>}`;

/**
 * `name:token,...`: names unique (letters, digits, `_`, `-`), tokens at least 16 characters.
 * Error messages name the entry, never a token.
 */
const AdminTokens = z.string().transform((text, ctx) => {
  const tokens: { name: string; token: string }[] = [];
  const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  entries.forEach((entry, index) => {
    const colon = entry.indexOf(":");
    const name = colon > 0 ? entry.slice(0, colon).trim() : "";
    const token = colon > 0 ? entry.slice(colon + 1).trim() : "";
    if (!/^[A-Za-z0-9_-]{1,40}$/.test(name)) {
      ctx.addIssue({ code: "custom", message: `entry ${index + 1} must be name:token, the name 1-40 letters, digits, _ or -` });
    } else if (token.length < 16) {
      ctx.addIssue({ code: "custom", message: `the token named ${name} must be at least 16 characters` });
    } else if (tokens.some((t) => t.name === name)) {
      ctx.addIssue({ code: "custom", message: `the name ${name} is used twice` });
    } else {
      tokens.push({ name, token });
    }
  });
  if (entries.length === 0) ctx.addIssue({ code: "custom", message: "must hold at least one name:token" });
  return tokens;
});

const concurrency = (fallback: number) => int(1).max(100).default(fallback);
const requestsPerSecond = (fallback: number) => z.coerce.number().positive().default(fallback);
const modeOverride = () => ProviderMode.optional();
const deadline = () => int(1).optional();

export const deadlineVariable = (step: StepName) => `STEP_DEADLINE_MS_${step.toUpperCase()}` as DeadlineVariable;

const registrySettings = {
  ...Object.fromEntries(Object.values(PROVIDERS).map((p) => [p.pool.concurrency.variable, concurrency(p.pool.concurrency.default)])),
  ...Object.fromEntries(Object.values(PROVIDERS).flatMap((p) => ("rate" in p ? [[p.rate.variable, requestsPerSecond(p.rate.default)]] : []))),
  ...Object.fromEntries(Object.values(PROVIDERS).flatMap((p) => ("modeVariable" in p ? [[p.modeVariable, modeOverride()]] : []))),
  ...Object.fromEntries(ALL_STEPS.map((step) => [deadlineVariable(step), deadline()])),
} as { [K in ConcurrencyVariable]: ReturnType<typeof concurrency> } & { [K in RateVariable]: ReturnType<typeof requestsPerSecond> } & {
  [K in ModeVariable]: ReturnType<typeof modeOverride>;
} & { [K in DeadlineVariable]: ReturnType<typeof deadline> };

export const EnvSchema = z.object({
  ...registrySettings,
  STRIPE_WEBHOOK_SECRET: z.string().min(1).optional(),
  ADMIN_API_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  PROVIDER_MODE: ProviderMode.default("sandbox"),
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
  /** Customer emails (docs/emails.md): a support address named in the failed and welcome emails. */
  SUPPORT_EMAIL: z.string().email().optional(),
  /** The tenant site's sign-in page, appended to the instance URL in the ready and welcome emails. */
  TENANT_LOGIN_PATH: z.string().regex(/^\//, "must start with /").default("/login"),
  /** Resend's webhook signing secret (whsec_…, from the Resend dashboard): POST /resend/webhook. */
  RESEND_WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/, "must be whsec_ followed by base64").optional(),

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
  /** Jobs running at once; more wait in `queued` and start as running ones finish. */
  MAX_ACTIVE_JOBS: int(1).max(10_000).default(25),

  // The tenant's life with Stripe (issue #8): docs/lifecycle.md.
  /** A cancelled subscription's instance is suspended at once and deprovisioned this much later (0: at once). */
  DEPROVISION_GRACE_MS: int(0).default(7 * 24 * 60 * 60_000),
  /** A subscription past_due this long suspends its instance. */
  SUSPEND_AFTER_PAST_DUE_MS: int(0).default(7 * 24 * 60 * 60_000),
  /** Stripe price id -> plan name and that plan's tenant variables. */
  PLANS: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "must be JSON" });
        return z.NEVER;
      }
    })
    .pipe(
      z.record(
        z.string().min(1),
        z.object({
          plan: z.string().regex(/^[a-z0-9_-]{1,40}$/, "plan names are lower-case letters, digits, _ or -"),
          env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "variable names are letters, digits and _"), z.string()).default({}),
        }),
      ),
    )
    .default({}),
  /** The Stripe event types forwarded to the tenant they belong to (comma-separated). */
  TENANT_EVENT_TYPES: z
    .string()
    .transform((text) => text.split(",").map((type) => type.trim()).filter((type) => type.length > 0))
    .pipe(z.array(z.string().regex(/^[a-z0-9_]+(\.[a-z0-9_]+)+$/, "must be Stripe event types")))
    .default([
      "checkout.session.completed",
      "customer.subscription.created",
      "customer.subscription.updated",
      "customer.subscription.deleted",
      "invoice.paid",
      "invoice.payment_failed",
    ]),
  /** Where a tenant receives its forwarded events; {deployment} and {instanceId} are filled in. */
  TENANT_EVENTS_URL_TEMPLATE: z
    .string()
    .refine((t) => t.includes("{deployment}") || t.includes("{instanceId}"), "must contain {deployment} or {instanceId}")
    .default("https://{deployment}.convex.site/stripe/events"),
  /** How long a forward is retried before it is given up (failed; redeliverable by hand). */
  TENANT_FORWARD_MAX_AGE_MS: int(1).default(3 * 24 * 60 * 60_000),
  /** Reconciliation's brake: more suspensions or deprovisions than this (or 5% of the fleet) apply nothing. */
  RECONCILE_MAX_CHANGES: int(0).default(10),

  // Fleet health (issue #9): docs/monitoring.md.
  /** Each monitored instance is checked once per interval; the fleet's rounds are spread over it. */
  HEALTH_CHECK_INTERVAL_MS: int(10_000).default(5 * 60_000),
  /** A site or backend probe that has not answered 2xx within this fails. */
  HEALTH_PROBE_TIMEOUT_MS: int(100).max(60_000).default(10_000),
  /** The management view (WorkOS organization, Pages latest deployment), listed fleet-wide this often. */
  HEALTH_DEEP_CHECK_INTERVAL_MS: int(60_000).default(60 * 60_000),
  /** A failed check is re-checked this much later, not at the next round. */
  HEALTH_CONFIRM_INTERVAL_MS: int(1_000).default(30_000),
  /** Consecutive failed checks that make an active instance degraded or down. */
  HEALTH_FAILURE_THRESHOLD: int(1).max(20).default(2),
  /** Consecutive passed checks that make a degraded or down instance active again. */
  HEALTH_SUCCESS_THRESHOLD: int(1).max(20).default(2),
  /** Health history (healthChecks), resolved incidents and sent alerts are kept this long. */
  HEALTH_RETENTION_MS: int(60_000).default(30 * 24 * 60 * 60_000),
  /** Instances checked together by one action (a health batch). */
  HEALTH_BATCH_SIZE: int(1).max(200).default(100),
  /** Health batches checked at once (the health work pool's parallelism). */
  HEALTH_CONCURRENCY: int(1).max(64).default(8),
  /** Where a tenant's site is probed: {subdomain} (the Pages subdomain Cloudflare returned), {project}, {instanceId}. */
  TENANT_SITE_URL_TEMPLATE: z
    .string()
    .refine((t) => /\{(subdomain|project|instanceId)\}/.test(t), "must contain {subdomain}, {project} or {instanceId}")
    .default("https://{subdomain}"),
  /** An incident unhealthy longer than this sends its one alert. */
  ALERT_AFTER_MS: int(0).default(10 * 60_000),
  /** While an alerted incident stays open, a reminder this often (0: none). */
  ALERT_REMINDER_MS: int(0).default(0),
  /** Alert emails go to each of these (comma-separated). */
  ALERT_EMAILS: z
    .string()
    .transform((text) => text.split(",").map((address) => address.trim()).filter((address) => address.length > 0))
    .pipe(z.array(z.string().email("must be email addresses, comma-separated")))
    .default([]),
  /** Alerts are POSTed here as signed JSON (Brain-Signature). */
  ALERT_WEBHOOK_URL: z.string().url().optional(),
  /** Signs the alert webhook (HMAC-SHA256); required when ALERT_WEBHOOK_URL is set. */
  ALERT_WEBHOOK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),

  // Secrets at rest and key rotation (issue 11): docs/security.md "Secrets and key rotation".
  /** `id:base64key,...` (each 32 bytes, ids unique); the first seals new secrets. Wins over ENCRYPTION_KEY. */
  ENCRYPTION_KEYS: z
    .string()
    .transform((text, ctx) => {
      const entries = text.split(",").map((entry) => entry.trim()).filter((entry) => entry.length > 0);
      const keys: { id: string; key: string }[] = [];
      for (const [index, entry] of entries.entries()) {
        const colon = entry.indexOf(":");
        const id = colon < 0 ? "" : entry.slice(0, colon);
        const key = colon < 0 ? "" : entry.slice(colon + 1);
        // Problems name the entry by position and id, never by its key.
        if (!KEY_ID_PATTERN.test(id)) {
          ctx.addIssue({ code: "custom", message: `entry ${index + 1} must be id:base64key, the id letters, digits, _ or - (at most 32)` });
        } else if (!/^[A-Za-z0-9+/]{43}=$/.test(key)) {
          ctx.addIssue({ code: "custom", message: `key "${id}" must be 32 bytes, base64-encoded (openssl rand -base64 32)` });
        } else if (keys.some((k) => k.id === id)) {
          ctx.addIssue({ code: "custom", message: `key id "${id}" appears more than once` });
        } else keys.push({ id, key });
      }
      if (entries.length === 0) ctx.addIssue({ code: "custom", message: "must hold at least one id:base64key" });
      return keys;
    })
    .optional(),
  /** A tenant's Convex deploy key is rotated once it is this many days old. */
  DEPLOY_KEY_ROTATION_DAYS: z.coerce.number().positive().max(3650).default(30),
  /** Instances whose key rotation starts per cron run (the rest wait for the next run). */
  DEPLOY_KEY_ROTATION_BATCH: int(1).max(500).default(25),
  /** Consecutive failed rotations of one tenant's key that alert the operators. */
  DEPLOY_KEY_ROTATION_ALERT_AFTER: int(1).max(100).default(3),
  /** The first retry of a failed rotation waits this long; each further one twice as long (at most a day). */
  DEPLOY_KEY_ROTATION_RETRY_MS: int(1_000).default(15 * 60_000),

  // Rate limits, blocking and admin tokens (issue 11): docs/security.md.
  /** Named admin tokens, `name:token,...`; wins over ADMIN_API_TOKEN (which alone is one token named `default`). */
  ADMIN_API_TOKENS: AdminTokens.optional(),
  /** POST /stripe/webhook: requests whose signature does not verify, per source address. */
  RATE_LIMIT_WEBHOOK_PER_ADDRESS_PER_MINUTE: int(1).default(30),
  /** POST /stripe/webhook: verified deliveries, all sources together (Stripe's retry bursts fit). */
  RATE_LIMIT_WEBHOOK_GLOBAL_PER_MINUTE: int(1).default(6_000),
  /** POST /resend/webhook: requests whose signature does not verify, per source address. */
  RATE_LIMIT_RESEND_PER_ADDRESS_PER_MINUTE: int(1).default(30),
  /** POST /resend/webhook: verified deliveries, all sources together. */
  RATE_LIMIT_RESEND_GLOBAL_PER_MINUTE: int(1).default(3_000),
  /** GET /status: requests per source address. */
  RATE_LIMIT_STATUS_PER_ADDRESS_PER_MINUTE: int(1).default(300),
  /** GET /status: requests per checkout session id (the page polls every 2 s: 30 a minute). */
  RATE_LIMIT_STATUS_PER_SESSION_PER_MINUTE: int(1).default(60),
  /** POST /provisioning-callback: verified reports per job. */
  RATE_LIMIT_CALLBACK_PER_JOB_PER_MINUTE: int(1).default(120),
  /** POST /provisioning-callback: requests whose signature does not verify, per source address. */
  RATE_LIMIT_CALLBACK_PER_ADDRESS_PER_MINUTE: int(1).default(30),
  /** Admin routes: authenticated calls per token name. */
  RATE_LIMIT_ADMIN_PER_TOKEN_PER_MINUTE: int(1).default(600),
  /** Admin routes: failed authentications per source address (one address cannot lock out another). */
  RATE_LIMIT_ADMIN_FAILURES_PER_ADDRESS_PER_MINUTE: int(1).default(10),
  /** Suspicious activity is counted per source address over this window. */
  SECURITY_WINDOW_MS: int(1_000).default(10 * 60_000),
  /** Failed signature checks (Stripe, Resend, callback) from one address within the window that block it. */
  SECURITY_BAD_SIGNATURE_THRESHOLD: int(1).default(50),
  /** Unknown /status session ids from one address within the window that block it (enumeration). */
  SECURITY_UNKNOWN_SESSION_THRESHOLD: int(1).default(30),
  /** Failed admin authentications from one address within the window that block it. */
  SECURITY_ADMIN_FAILURE_THRESHOLD: int(1).default(20),
  /** A source's first block lasts this long; each further block doubles it. */
  SECURITY_BLOCK_MS: int(1_000).default(15 * 60_000),
  /** The longest block; a source whose last block ended this long ago starts again from SECURITY_BLOCK_MS. */
  SECURITY_BLOCK_MAX_MS: int(1_000).default(24 * 60 * 60_000),
  // Audit log and retention (issue #11): docs/security.md. One cron (retention.ts) prunes every
  // growing table to these windows.
  /** Audit rows are kept this long (400 days: a yearly review with room to spare). */
  AUDIT_RETENTION_MS: int(DAY_MS).default(400 * DAY_MS),
  /** Processed Stripe events are kept this long; at least 31 days, so redeliveries in Stripe's 30-day retry window stay duplicates. */
  STRIPE_EVENT_RETENTION_MS: int(31 * DAY_MS).default(90 * DAY_MS),
  /** Provisioning-callback signatures are kept this long; at least 10 min (twice the 5-min signature tolerance), so a replay is still refused. */
  CALLBACK_RECEIPT_RETENTION_MS: int(10 * 60_000).default(60 * 60_000),
  /** Finished (done or cancelled) compensation deletions are kept this long. */
  CLEANUP_TASK_RETENTION_MS: int(60_000).default(30 * DAY_MS),
  /** Finished tenant forwards (delivered, failed) and customer emails (sent, delivered, bounced, failed, cancelled) are kept this long. */
  DELIVERY_RETENTION_MS: int(60_000).default(30 * DAY_MS),
  /** Security events (blocks) are kept this long; at least 2 days, past the longest block and its window. */
  SECURITY_EVENT_RETENTION_MS: int(2 * DAY_MS).default(90 * DAY_MS),
  // Per-customer quotas (docs/security.md#per-customer-quotas): a paid checkout over either is
  // recorded needs_attention, alerts the operators and provisions nothing.
  /** Instances one customer may hold that are not deleted (any other status counts). */
  MAX_INSTANCES_PER_CUSTOMER: int(0).default(5),
  /** Checkouts that create an instance, per customer, in any rolling 24 hours. */
  MAX_CHECKOUTS_PER_CUSTOMER_PER_DAY: int(0).default(10),
});

export type Config = z.infer<typeof EnvSchema>;
export type ProviderModeName = z.infer<typeof ProviderMode>;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Convex env vars cannot be unset to "" in some tools; treat empty as absent.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")} (${issue.message})`);
    return fail("CONFIG_INVALID", `invalid environment: ${problems.join(", ")}`);
  }
  if (parsed.data.ALERT_WEBHOOK_URL !== undefined && parsed.data.ALERT_WEBHOOK_SECRET === undefined) {
    return fail("CONFIG_INVALID", "invalid environment: ALERT_WEBHOOK_SECRET (required when ALERT_WEBHOOK_URL is set)");
  }
  return parsed.data;
}

/**
 * The variables live mode still lacks, each with who needs it. Only providers some step
 * calls count (Resend too: jobs send customer emails). Routes that need no provider keep working
 * without them; the webhook and the job engine refuse to start work until they are set.
 */
export function missingLiveCredentials(config: Config): string[] {
  const missing: string[] = [];
  let anyLive = false;
  for (const provider of LIVE_PROVIDERS) {
    if (providerMode(config, provider) !== "live") continue;
    anyLive = true;
    if (!PROVIDERS_IN_USE.has(provider)) continue;
    for (const name of PROVIDERS[provider].credentials as readonly (keyof Config)[]) {
      if (config[name] === undefined) missing.push(`${name} (needed by live ${provider})`);
    }
  }
  // Live secrets at rest need a real key, not the sandbox's published one.
  if (anyLive && config.ENCRYPTION_KEY === undefined && config.ENCRYPTION_KEYS === undefined) {
    missing.push("ENCRYPTION_KEY (needed in live mode)");
  }
  return missing;
}

/**
 * The admin tokens in force: ADMIN_API_TOKENS when set, else ADMIN_API_TOKEN as one token named
 * `default`, else none (the admin API is disabled).
 */
export function adminTokens(config: Config): { name: string; token: string }[] {
  if (config.ADMIN_API_TOKENS) return config.ADMIN_API_TOKENS;
  return config.ADMIN_API_TOKEN ? [{ name: "default", token: config.ADMIN_API_TOKEN }] : [];
}

/** Fails with CONFIG_INVALID naming every missing live credential (never a value). */
export function requireLiveCredentials(config: Config): void {
  const missing = missingLiveCredentials(config);
  if (missing.length > 0) fail("CONFIG_INVALID", `missing environment: ${missing.join(", ")}`);
}

/** The deadline of one attempt of `step`: its own override, else STEP_DEADLINE_MS. */
export function stepDeadlineMs(config: Config, step: StepName): number {
  const override = config[deadlineVariable(step)];
  const own = (STEPS[step] as { deadlineMs?: number }).deadlineMs;
  return override ?? own ?? config.STEP_DEADLINE_MS;
}

export function retryPolicy(config: Config): RetryPolicy {
  return {
    maxAttempts: config.RETRY_MAX_ATTEMPTS,
    baseDelayMs: config.RETRY_BASE_DELAY_MS,
    maxDelayMs: config.RETRY_MAX_DELAY_MS,
    jitter: config.RETRY_JITTER,
  };
}

export type { LiveProviderName };

export function providerMode(config: Config, provider: LiveProviderName): ProviderModeName {
  return config[PROVIDERS[provider].modeVariable] ?? config.PROVIDER_MODE;
}

/** A provider setting the registry names (concurrency, request budget). */
export function numericSetting(config: Config, variable: ConcurrencyVariable | RateVariable): number {
  return config[variable];
}

// Every credential the registry names is a variable of this schema (checked when compiling).
type CredentialVariable = Registry[keyof Registry]["credentials"][number];
export const credentialsAreVariables: CredentialVariable extends keyof Config ? true : never = true;
