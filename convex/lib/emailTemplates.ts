// The customer emails of a provision job (issue #10), in one place: each kind rendered as a
// subject, plain text and HTML from the data the outbox gathers (model/notifications.ts).
// Pure and deterministic: the same data renders the same bytes, so a retried send under the
// same Resend idempotency key carries the same payload. Never includes the recipient's address.
import { v, type Infer } from "convex/values";
import { literals } from "convex-helpers/validators";

export const vNotificationKind = literals("provisioning_started", "instance_ready", "provisioning_failed", "welcome");
export type NotificationKind = Infer<typeof vNotificationKind>;
/** A notification's life: pending until Resend takes it (sent), then what Resend's webhook reports. */
export const vNotificationStatus = literals("pending", "sent", "delivered", "bounced", "complained", "failed", "cancelled");
export type NotificationStatus = Infer<typeof vNotificationStatus>;
export const vRenderedEmail = v.object({ subject: v.string(), text: v.string(), html: v.string() });

/** What a template may use; each kind reads its own fields and falls back where one is missing. */
export type EmailData = {
  customerName?: string;
  plan: string;
  /** provisioning_started: the estimate in minutes, and whether it is measured or the default. */
  etaMinutes?: number;
  etaMeasured?: boolean;
  /** The tenant site, once ready. */
  instanceUrl?: string;
  /** Where the customer signs in (the site's sign-in page). */
  loginUrl?: string;
  /** The public status page of this checkout. */
  statusUrl?: string;
  /** SUPPORT_URL and SUPPORT_EMAIL. */
  supportUrl?: string;
  supportEmail?: string;
  /** welcome: "invited" when WorkOS emailed an invitation to the organization, "existing" when the user already had an account. */
  signIn?: "invited" | "existing";
};

export type RenderedEmail = Infer<typeof vRenderedEmail>;

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** A paragraph: plain text, with optional links written as [label](url). */
type Block = { kind: "p"; text: string } | { kind: "list"; items: string[] };

const LINK = /\[([^\]]+)\]\(([^)\s]+)\)/g;
const textOf = (s: string) => s.replace(LINK, (_m, label: string, url: string) => `${label}: ${url}`);
const htmlOf = (s: string) => {
  let out = "";
  let last = 0;
  for (const m of s.matchAll(LINK)) {
    out += escapeHtml(s.slice(last, m.index)) + `<a href="${escapeHtml(m[2])}">${escapeHtml(m[1])}</a>`;
    last = m.index + m[0].length;
  }
  return out + escapeHtml(s.slice(last));
};

function assemble(subject: string, blocks: Block[]): RenderedEmail {
  const text =
    blocks.map((b) => (b.kind === "p" ? textOf(b.text) : b.items.map((item) => `- ${textOf(item)}`).join("\n"))).join("\n\n") + "\n";
  const body = blocks
    .map((b) => (b.kind === "p" ? `<p>${htmlOf(b.text)}</p>` : `<ul>\n${b.items.map((item) => `<li>${htmlOf(item)}</li>`).join("\n")}\n</ul>`))
    .join("\n");
  const html = `<!doctype html>\n<html><body style="font-family: sans-serif; line-height: 1.5">\n${body}\n</body></html>\n`;
  return { subject, text, html };
}

const greeting = (data: EmailData) => (data.customerName ? `Hi ${data.customerName},` : "Hello,");

function supportBlocks(data: EmailData): Block[] {
  const items: string[] = [];
  if (data.supportUrl) items.push(`[Support](${data.supportUrl})`);
  if (data.supportEmail) items.push(`Email: [${data.supportEmail}](mailto:${data.supportEmail})`);
  if (items.length === 0) return [{ kind: "p", text: "Questions? Reply to this email and we will help." }];
  return [{ kind: "p", text: "Need help? Contact us:" }, { kind: "list", items }];
}

/** Renders one kind. Every URL given appears in both the text and the HTML part. */
export function renderEmail(kind: NotificationKind, data: EmailData): RenderedEmail {
  switch (kind) {
    case "provisioning_started": {
      const minutes = Math.max(1, Math.round(data.etaMinutes ?? 10));
      const basis = data.etaMeasured ? "based on recent setups" : "a typical setup";
      return assemble("We are setting up your instance", [
        { kind: "p", text: greeting(data) },
        { kind: "p", text: `Thanks for your order (${data.plan} plan). We have started setting up your instance.` },
        { kind: "p", text: `It should be ready in about ${minutes} minute${minutes === 1 ? "" : "s"} (${basis}). We will email you as soon as it is.` },
        ...(data.statusUrl ? [{ kind: "p" as const, text: `Follow the progress on the [status page](${data.statusUrl}).` }] : []),
      ]);
    }
    case "instance_ready":
      return assemble("Your instance is ready", [
        { kind: "p", text: greeting(data) },
        { kind: "p", text: `Your instance (${data.plan} plan) is ready.` },
        ...(data.loginUrl ? [{ kind: "p" as const, text: `Sign in here: [${data.loginUrl}](${data.loginUrl})` }] : []),
        ...(data.instanceUrl && data.instanceUrl !== data.loginUrl ? [{ kind: "p" as const, text: `Your instance: [${data.instanceUrl}](${data.instanceUrl})` }] : []),
        { kind: "p", text: "A welcome email with a short guide follows." },
      ]);
    case "provisioning_failed":
      return assemble("We could not set up your instance", [
        { kind: "p", text: greeting(data) },
        {
          kind: "p",
          text: `We could not finish setting up your instance (${data.plan} plan). Our team has been told, and nothing more is needed from you to keep your order.`,
        },
        ...(data.statusUrl ? [{ kind: "p" as const, text: `Its current state is on the [status page](${data.statusUrl}).` }] : []),
        ...supportBlocks(data),
      ]);
    case "welcome": {
      const signIn =
        data.signIn === "invited"
          ? "You will receive a separate invitation email to join your organization. Accept it to create your password (or sign in with Google or Microsoft), then sign in at the link below."
          : "Sign in with the account you already have for this email address; it has been added to your organization.";
      return assemble("Welcome: getting started with your instance", [
        { kind: "p", text: greeting(data) },
        { kind: "p", text: "Welcome aboard. Here is how to get started." },
        { kind: "p", text: `How to sign in: ${signIn}` },
        {
          kind: "list",
          items: [
            ...(data.instanceUrl ? [`Your instance: [${data.instanceUrl}](${data.instanceUrl})`] : []),
            ...(data.loginUrl ? [`Sign in: [${data.loginUrl}](${data.loginUrl})`] : []),
            "Invite your team from the organization settings once you are signed in.",
            "Connect your own domain and payment settings from the dashboard.",
          ],
        },
        ...supportBlocks(data),
      ]);
    }
  }
}
