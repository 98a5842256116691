// Rate limits and suspicious-activity blocking for the public routes (issue 11, docs/security.md).
//
// Every route asks `screen` once or twice per request, in one mutation each time:
//   1. is the source address blocked? (its latest securityEvents row still in force)
//   2. does the request count as suspicious? (a failed signature check, an unknown status session
//      id, a failed admin login): it takes a token from the source's detection bucket for that
//      kind; when the bucket is empty the source is blocked, recorded, and the operators alerted;
//   3. does it fit every rate limit it names? (token buckets of @convex-dev/rate-limiter).
// A refused request stores nothing but this bookkeeping. Routes call screen only with what they
// trust: a request whose signature or admin token verified is never screened by its address.
import { v, type Infer } from "convex/values";
import { literals } from "convex-helpers/validators";
import type { Doc } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import type { Config } from "../lib/config";
import { log } from "../lib/log";
import { vSecurityEventKind, type SecurityEventKind, type SecurityEventView } from "../lib/validators";
import { queueSecurityNotice } from "./alerts";
import { MINUTE, rateLimiter } from "./rateLimiter";

/** The source key when Convex reports no address: all such requests share one bucket. */
export const UNKNOWN_SOURCE = "unknown";

/** Every rate limit a route can name, and the setting that sizes it (requests per minute). */
export const LIMIT_SETTINGS = {
  webhookPerAddress: "RATE_LIMIT_WEBHOOK_PER_ADDRESS_PER_MINUTE",
  webhookGlobal: "RATE_LIMIT_WEBHOOK_GLOBAL_PER_MINUTE",
  resendPerAddress: "RATE_LIMIT_RESEND_PER_ADDRESS_PER_MINUTE",
  resendGlobal: "RATE_LIMIT_RESEND_GLOBAL_PER_MINUTE",
  statusPerAddress: "RATE_LIMIT_STATUS_PER_ADDRESS_PER_MINUTE",
  statusPerSession: "RATE_LIMIT_STATUS_PER_SESSION_PER_MINUTE",
  callbackPerJob: "RATE_LIMIT_CALLBACK_PER_JOB_PER_MINUTE",
  callbackPerAddress: "RATE_LIMIT_CALLBACK_PER_ADDRESS_PER_MINUTE",
  adminPerToken: "RATE_LIMIT_ADMIN_PER_TOKEN_PER_MINUTE",
  adminFailuresPerAddress: "RATE_LIMIT_ADMIN_FAILURES_PER_ADDRESS_PER_MINUTE",
} as const satisfies Record<string, keyof Config>;

export const vLimitName = literals(...(Object.keys(LIMIT_SETTINGS) as (keyof typeof LIMIT_SETTINGS)[]));
export type LimitName = Infer<typeof vLimitName>;

/** The detection threshold of each kind of suspicious activity. */
const THRESHOLD_SETTINGS = {
  bad_signatures: "SECURITY_BAD_SIGNATURE_THRESHOLD",
  session_enumeration: "SECURITY_UNKNOWN_SESSION_THRESHOLD",
  admin_auth_failures: "SECURITY_ADMIN_FAILURE_THRESHOLD",
} as const satisfies Record<SecurityEventKind, keyof Config>;

const KIND_WORDS: Record<SecurityEventKind, string> = {
  bad_signatures: "failed signature checks",
  session_enumeration: "unknown status session ids",
  admin_auth_failures: "failed admin authentications",
};

export const vScreenArgs = {
  /** The source address (UNKNOWN_SOURCE when none). */
  source: v.string(),
  /** The route asked, for the event's record. */
  route: v.string(),
  /** Refuse the request if its source is blocked. */
  checkBlock: v.boolean(),
  /** This request is suspicious of this kind: it counts toward the source's block. */
  suspicious: v.optional(v.object({ kind: vSecurityEventKind })),
  /** Rate limits to take one token from, in order; the first one empty refuses the request. */
  limits: v.array(v.object({ name: vLimitName, key: v.optional(v.string()) })),
};

export const vScreenResult = v.union(
  v.object({ kind: v.literal("ok") }),
  v.object({ kind: v.literal("blocked"), until: v.number(), retryAfterMs: v.number() }),
  v.object({ kind: v.literal("limited"), limit: vLimitName, retryAfterMs: v.number() }),
);
export type ScreenResult = Infer<typeof vScreenResult>;
type ScreenArgs = { source: string; route: string; checkBlock: boolean; suspicious?: { kind: SecurityEventKind }; limits: { name: LimitName; key?: string }[] };

/** The source's latest event (its block, if still in force). */
async function latestEvent(ctx: QueryCtx, source: string): Promise<Doc<"securityEvents"> | null> {
  return ctx.db
    .query("securityEvents")
    .withIndex("by_source_and_at", (q) => q.eq("source", source))
    .order("desc")
    .first();
}

/** How long the `strike`-th block in a row lasts: SECURITY_BLOCK_MS doubling, capped at SECURITY_BLOCK_MAX_MS. */
export function blockDurationMs(config: Config, strike: number): number {
  return Math.min(config.SECURITY_BLOCK_MS * 2 ** Math.min(strike - 1, 40), config.SECURITY_BLOCK_MAX_MS);
}

const minutes = (ms: number) => (ms % MINUTE === 0 ? `${ms / MINUTE} min` : `${Math.round(ms / 1000)} s`);

/** Blocks `source`: records the event, queues its alert (once: in this same transaction) and logs it. */
async function block(ctx: MutationCtx, config: Config, args: ScreenArgs, kind: SecurityEventKind, now: number) {
  const previous = await latestEvent(ctx, args.source);
  // Strikes run on while blocks follow each other within SECURITY_BLOCK_MAX_MS of the last one's end.
  const strike = previous && now - previous.blockedUntil < config.SECURITY_BLOCK_MAX_MS ? previous.strike + 1 : 1;
  const durationMs = blockDurationMs(config, strike);
  const threshold = config[THRESHOLD_SETTINGS[kind]];
  const detail =
    `${threshold} ${KIND_WORDS[kind]} within ${minutes(config.SECURITY_WINDOW_MS)} (last on ${args.route.slice(0, 60)}); ` +
    `blocked for ${minutes(durationMs)}${strike > 1 ? ` (block ${strike} in a row)` : ""}`;
  const blockedUntil = now + durationMs;
  const eventId = await ctx.db.insert("securityEvents", {
    at: now,
    kind,
    source: args.source,
    detail,
    route: args.route.slice(0, 100),
    strike,
    blockedUntil,
  });
  const deliveries = await queueSecurityNotice(ctx, config, (await ctx.db.get("securityEvents", eventId))!);
  log("warn", "security.blocked", { correlationId: eventId, kind, source: args.source, route: args.route, strike, blockedUntil, deliveries });
  return { kind: "blocked" as const, until: blockedUntil, retryAfterMs: durationMs };
}

/** Shards of a global bucket: one per 100 requests a minute, at most 10 (a small limit stays exact). */
export const shardsFor = (rate: number) => Math.max(1, Math.min(10, Math.floor(rate / 100)));

/** Block check, then suspicion, then rate limits: the first that refuses decides. */
export async function screen(ctx: MutationCtx, config: Config, args: ScreenArgs): Promise<ScreenResult> {
  const now = Date.now();
  if (args.checkBlock) {
    const latest = await latestEvent(ctx, args.source);
    if (latest && latest.blockedUntil > now) return { kind: "blocked", until: latest.blockedUntil, retryAfterMs: latest.blockedUntil - now };
  }
  if (args.suspicious) {
    const { kind } = args.suspicious;
    const threshold = config[THRESHOLD_SETTINGS[kind]];
    const counted = await rateLimiter.limit(ctx, `suspicious:${kind}`, {
      key: args.source,
      config: { kind: "token bucket", rate: threshold, period: config.SECURITY_WINDOW_MS, capacity: threshold },
    });
    if (!counted.ok) {
      // A fresh count after the block: the bucket starts full again.
      await rateLimiter.reset(ctx, `suspicious:${kind}`, { key: args.source });
      return block(ctx, config, args, kind, now);
    }
  }
  for (const { name, key } of args.limits) {
    const rate = config[LIMIT_SETTINGS[name]];
    const result = await rateLimiter.limit(ctx, name, {
      ...(key !== undefined ? { key } : {}),
      // A global bucket is one document every request writes: spread over shards (each with its
      // share of the rate) so concurrent deliveries rarely collide.
      config: { kind: "token bucket", rate, period: MINUTE, capacity: rate, shards: key === undefined ? shardsFor(rate) : 1 },
    });
    if (!result.ok) return { kind: "limited", limit: name, retryAfterMs: result.retryAfter };
  }
  return { kind: "ok" };
}

export const LISTED_MAX = 500;

/** Security events, newest first, at most `limit`; `since` (epoch ms) bounds them from below. */
export async function listEvents(ctx: QueryCtx, limit: number, since?: number): Promise<SecurityEventView[]> {
  const rows = await ctx.db
    .query("securityEvents")
    .withIndex("by_at", (q) => (since !== undefined ? q.gte("at", since) : q))
    .order("desc")
    .take(Math.max(1, Math.min(limit, LISTED_MAX)));
  return rows.map((row) => ({ at: row.at, kind: row.kind, source: row.source, detail: row.detail }));
}
