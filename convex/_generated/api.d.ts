/* eslint-disable */
/**
 * Generated `api` utility.
 *
 * THIS CODE IS AUTOMATICALLY GENERATED.
 *
 * To regenerate, run `npx convex dev`.
 * @module
 */

import type {
  ApiFromModules,
  FilterApi,
  FunctionReference,
} from "convex/server";
import type * as adminRoutes from "../adminRoutes.js";
import type * as alertRoutes from "../alertRoutes.js";
import type * as alerts from "../alerts.js";
import type * as audit from "../audit.js";
import type * as cleanup from "../cleanup.js";
import type * as crons from "../crons.js";
import type * as deliveryRoutes from "../deliveryRoutes.js";
import type * as deployKeys from "../deployKeys.js";
import type * as forwarding from "../forwarding.js";
import type * as healthRounds from "../healthRounds.js";
import type * as healthRoutes from "../healthRoutes.js";
import type * as http from "../http.js";
import type * as jobRoutes from "../jobRoutes.js";
import type * as jobViews from "../jobViews.js";
import type * as lib_alertSignature from "../lib/alertSignature.js";
import type * as lib_backoff from "../lib/backoff.js";
import type * as lib_config from "../lib/config.js";
import type * as lib_crypto from "../lib/crypto.js";
import type * as lib_emailTemplates from "../lib/emailTemplates.js";
import type * as lib_errors from "../lib/errors.js";
import type * as lib_http from "../lib/http.js";
import type * as lib_log from "../lib/log.js";
import type * as lib_stripeSignature from "../lib/stripeSignature.js";
import type * as lib_svix from "../lib/svix.js";
import type * as lib_validators from "../lib/validators.js";
import type * as lifecycle from "../lifecycle.js";
import type * as metrics from "../metrics.js";
import type * as metricsRoutes from "../metricsRoutes.js";
import type * as model_alerts from "../model/alerts.js";
import type * as model_audit from "../model/audit.js";
import type * as model_checkout from "../model/checkout.js";
import type * as model_circuits from "../model/circuits.js";
import type * as model_cleanup from "../model/cleanup.js";
import type * as model_dag from "../model/dag.js";
import type * as model_decide from "../model/decide.js";
import type * as model_eta from "../model/eta.js";
import type * as model_forwarding from "../model/forwarding.js";
import type * as model_health from "../model/health.js";
import type * as model_healthCounts from "../model/healthCounts.js";
import type * as model_healthRules from "../model/healthRules.js";
import type * as model_healthSchedule from "../model/healthSchedule.js";
import type * as model_incidents from "../model/incidents.js";
import type * as model_jobs from "../model/jobs.js";
import type * as model_lifecycle from "../model/lifecycle.js";
import type * as model_lifecycleRules from "../model/lifecycleRules.js";
import type * as model_metrics from "../model/metrics.js";
import type * as model_metricsFigures from "../model/metricsFigures.js";
import type * as model_notifications from "../model/notifications.js";
import type * as model_orphanScan from "../model/orphanScan.js";
import type * as model_orphans from "../model/orphans.js";
import type * as model_pools from "../model/pools.js";
import type * as model_quotas from "../model/quotas.js";
import type * as model_rateLimiter from "../model/rateLimiter.js";
import type * as model_reconcile from "../model/reconcile.js";
import type * as model_secrets from "../model/secrets.js";
import type * as model_security from "../model/security.js";
import type * as model_status from "../model/status.js";
import type * as model_statusPage from "../model/statusPage.js";
import type * as model_steps from "../model/steps.js";
import type * as model_stripeWebhook from "../model/stripeWebhook.js";
import type * as monitoring from "../monitoring.js";
import type * as notifications from "../notifications.js";
import type * as orphans from "../orphans.js";
import type * as providerCache from "../providerCache.js";
import type * as providers_chaos from "../providers/chaos.js";
import type * as providers_classify from "../providers/classify.js";
import type * as providers_cloudflare from "../providers/cloudflare.js";
import type * as providers_convex from "../providers/convex.js";
import type * as providers_github from "../providers/github.js";
import type * as providers_http from "../providers/http.js";
import type * as providers_index from "../providers/index.js";
import type * as providers_operations from "../providers/operations.js";
import type * as providers_owned from "../providers/owned.js";
import type * as providers_probe from "../providers/probe.js";
import type * as providers_resend from "../providers/resend.js";
import type * as providers_sandbox from "../providers/sandbox.js";
import type * as providers_stripe from "../providers/stripe.js";
import type * as providers_types from "../providers/types.js";
import type * as providers_workos from "../providers/workos.js";
import type * as provisioning from "../provisioning.js";
import type * as reconcileRoutes from "../reconcileRoutes.js";
import type * as reconciliation from "../reconciliation.js";
import type * as registry from "../registry.js";
import type * as retention from "../retention.js";
import type * as sandbox from "../sandbox.js";
import type * as secrets from "../secrets.js";
import type * as security from "../security.js";
import type * as securityRoutes from "../securityRoutes.js";
import type * as status from "../status.js";
import type * as steps from "../steps.js";
import type * as stripe from "../stripe.js";

/**
 * A utility for referencing Convex functions in your app's API.
 *
 * Usage:
 * ```js
 * const myFunctionReference = api.myModule.myFunction;
 * ```
 */
declare const fullApi: ApiFromModules<{
  adminRoutes: typeof adminRoutes;
  alertRoutes: typeof alertRoutes;
  alerts: typeof alerts;
  audit: typeof audit;
  cleanup: typeof cleanup;
  crons: typeof crons;
  deliveryRoutes: typeof deliveryRoutes;
  deployKeys: typeof deployKeys;
  forwarding: typeof forwarding;
  healthRounds: typeof healthRounds;
  healthRoutes: typeof healthRoutes;
  http: typeof http;
  jobRoutes: typeof jobRoutes;
  jobViews: typeof jobViews;
  "lib/alertSignature": typeof lib_alertSignature;
  "lib/backoff": typeof lib_backoff;
  "lib/config": typeof lib_config;
  "lib/crypto": typeof lib_crypto;
  "lib/emailTemplates": typeof lib_emailTemplates;
  "lib/errors": typeof lib_errors;
  "lib/http": typeof lib_http;
  "lib/log": typeof lib_log;
  "lib/stripeSignature": typeof lib_stripeSignature;
  "lib/svix": typeof lib_svix;
  "lib/validators": typeof lib_validators;
  lifecycle: typeof lifecycle;
  metrics: typeof metrics;
  metricsRoutes: typeof metricsRoutes;
  "model/alerts": typeof model_alerts;
  "model/audit": typeof model_audit;
  "model/checkout": typeof model_checkout;
  "model/circuits": typeof model_circuits;
  "model/cleanup": typeof model_cleanup;
  "model/dag": typeof model_dag;
  "model/decide": typeof model_decide;
  "model/eta": typeof model_eta;
  "model/forwarding": typeof model_forwarding;
  "model/health": typeof model_health;
  "model/healthCounts": typeof model_healthCounts;
  "model/healthRules": typeof model_healthRules;
  "model/healthSchedule": typeof model_healthSchedule;
  "model/incidents": typeof model_incidents;
  "model/jobs": typeof model_jobs;
  "model/lifecycle": typeof model_lifecycle;
  "model/lifecycleRules": typeof model_lifecycleRules;
  "model/metrics": typeof model_metrics;
  "model/metricsFigures": typeof model_metricsFigures;
  "model/notifications": typeof model_notifications;
  "model/orphanScan": typeof model_orphanScan;
  "model/orphans": typeof model_orphans;
  "model/pools": typeof model_pools;
  "model/quotas": typeof model_quotas;
  "model/rateLimiter": typeof model_rateLimiter;
  "model/reconcile": typeof model_reconcile;
  "model/secrets": typeof model_secrets;
  "model/security": typeof model_security;
  "model/status": typeof model_status;
  "model/statusPage": typeof model_statusPage;
  "model/steps": typeof model_steps;
  "model/stripeWebhook": typeof model_stripeWebhook;
  monitoring: typeof monitoring;
  notifications: typeof notifications;
  orphans: typeof orphans;
  providerCache: typeof providerCache;
  "providers/chaos": typeof providers_chaos;
  "providers/classify": typeof providers_classify;
  "providers/cloudflare": typeof providers_cloudflare;
  "providers/convex": typeof providers_convex;
  "providers/github": typeof providers_github;
  "providers/http": typeof providers_http;
  "providers/index": typeof providers_index;
  "providers/operations": typeof providers_operations;
  "providers/owned": typeof providers_owned;
  "providers/probe": typeof providers_probe;
  "providers/resend": typeof providers_resend;
  "providers/sandbox": typeof providers_sandbox;
  "providers/stripe": typeof providers_stripe;
  "providers/types": typeof providers_types;
  "providers/workos": typeof providers_workos;
  provisioning: typeof provisioning;
  reconcileRoutes: typeof reconcileRoutes;
  reconciliation: typeof reconciliation;
  registry: typeof registry;
  retention: typeof retention;
  sandbox: typeof sandbox;
  secrets: typeof secrets;
  security: typeof security;
  securityRoutes: typeof securityRoutes;
  status: typeof status;
  steps: typeof steps;
  stripe: typeof stripe;
}>;
export declare const api: FilterApi<
  typeof fullApi,
  FunctionReference<any, "public">
>;
export declare const internal: FilterApi<
  typeof fullApi,
  FunctionReference<any, "internal">
>;

export declare const components: {
  "convexPool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"convexPool">;
  "workosPool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"workosPool">;
  "cloudflarePool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"cloudflarePool">;
  "stripePool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"stripePool">;
  "githubPool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"githubPool">;
  "resendPool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"resendPool">;
  "brainPool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"brainPool">;
  "healthPool": import("@convex-dev/workpool/_generated/component.js").ComponentApi<"healthPool">;
  "rateLimiter": import("@convex-dev/rate-limiter/_generated/component.js").ComponentApi<"rateLimiter">;
  "healthCounts": import("@convex-dev/aggregate/_generated/component.js").ComponentApi<"healthCounts">;
};
