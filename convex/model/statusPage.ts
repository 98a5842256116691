// The HTML status page a customer lands on after checkout. It refreshes itself
// while work is in progress and shows only what the status view holds.
import { STEPS } from "../registry";
import type { StatusView } from "./status";

const HEADINGS: Record<StatusView["status"], string> = {
  pending: "Setting up your instance",
  provisioning: "Setting up your instance",
  ready: "Your instance is ready",
  failed: "Setup failed",
  suspended: "Your instance is suspended",
  deleted: "Your instance was deleted",
};

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);


export function renderStatusPage(view: StatusView, supportUrl: string | undefined): string {
  const inProgress = view.status === "pending" || view.status === "provisioning";
  const rows = view.steps
    .map((s) => `<li class="${s.status}"><span>${escape(STEPS[s.name].label)}</span><em>${escape(s.status)}</em></li>`)
    .join("");
  const link = view.instanceUrl
    ? `<p><a href="${escape(view.instanceUrl)}">${escape(view.instanceUrl)}</a></p>`
    : "";
  const support = view.status === "failed" && supportUrl ? `<p><a href="${escape(supportUrl)}">Contact support</a></p>` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${inProgress ? '<meta http-equiv="refresh" content="3">' : ""}
<title>Your instance: ${escape(view.status)}</title>
<style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
progress{width:100%;height:1rem}ul{list-style:none;padding:0}li{display:flex;justify-content:space-between;padding:.35rem 0;border-bottom:1px solid #eee}
li.succeeded em{color:#17803d}li.failed em{color:#b42318}li.running em,li.retrying em,li.waiting em{color:#9a6700}</style></head>
<body><h1>${escape(HEADINGS[view.status])}</h1>
<p>${escape(view.message)}</p>
<progress max="100" value="${view.progress.percent}">${view.progress.percent}%</progress>
<p>${view.progress.currentStep} of ${view.progress.totalSteps} steps done</p>
${link}<ul>${rows}</ul>${support}
</body></html>`;
}
