// Live Resend adapter on the `resend` SDK. The SDK never throws for HTTP errors: it returns
// { data, error }, which is classified here. Every send carries an idempotency key, so a
// retried send is delivered once.
import { Resend } from "resend";
import { fail } from "../lib/errors";
import { errorForStatus, networkError, sdkCall } from "./http";
import { ProviderError, type ProviderEnv, type ResendAdapter } from "./types";

export function liveResend(env: ProviderEnv): ResendAdapter {
  const { config } = env;
  const key = config.RESEND_API_KEY ?? fail("CONFIG_INVALID", "RESEND_API_KEY is not set");
  const from = config.EMAIL_FROM ?? fail("CONFIG_INVALID", "EMAIL_FROM is not set");
  const resend = new Resend(key, { baseUrl: config.RESEND_API_URL.replace(/\/$/, "") });

  return {
    async sendEmail({ to, subject, html, text, idempotencyKey }) {
      return sdkCall(
        env,
        "resend",
        "sendEmail",
        async () => {
          // The SDK has no timeout of its own; an abort comes back as a network failure.
          const result = await resend.emails.send(
            { from, to, subject, html, text },
            { idempotencyKey, signal: AbortSignal.timeout(config.PROVIDER_TIMEOUT_MS) },
          );
          if (result.error) {
            const { statusCode, name, message } = result.error as { statusCode: number | null; name: string; message: string };
            const headers = (result as { headers?: Record<string, string> | null }).headers;
            if (statusCode === null) throw networkError("resend", new Error(message));
            if (name === "concurrent_idempotent_requests") {
              // The first send under this key is still in progress: retrying later replays its answer.
              throw new ProviderError("resend", "transient", `${statusCode}: ${message}`, undefined, name, statusCode);
            }
            throw errorForStatus("resend", statusCode, message, { code: name, retryAfter: headers?.["retry-after"] ?? null });
          }
          return { id: result.data!.id };
        },
        (error) => networkError("resend", error),
        // The SDK takes no fetch; `emails.send` is this one request.
        { method: "POST", path: "/emails" },
      );
    },
  };
}
