// The HTML status page a customer lands on after checkout. The server renders it complete, so it
// works without JavaScript (a <noscript> meta refresh reloads it while work is in progress); with
// JavaScript it polls the same URL for JSON and updates in place. It shows only what the status
// view holds, and its page script carries no data but step labels and the support link.
import type { StepName } from "../lib/validators";
import { STEPS, STEP_LIST } from "../registry";
import type { StatusView } from "./status";

const HEADINGS: Record<StatusView["status"], string> = {
  pending: "Setting up your instance",
  provisioning: "Setting up your instance",
  ready: "Your instance is ready",
  failed: "Setup failed",
  suspended: "Your instance is suspended",
  deleted: "Your instance was deleted",
};

/** How often the page script asks for the JSON view while work is in progress. */
export const POLL_MS = 2_000;
/** The reload interval of the no-JavaScript fallback. */
export const NOSCRIPT_REFRESH_S = 5;

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const label = (name: StepName) => STEPS[name].label;

/** "About 3 minutes", "less than a minute": the page's wording of an ETA (the script has a twin). */
export function formatEta(ms: number): string {
  if (ms < 60_000) return "less than a minute";
  const minutes = Math.round(ms / 60_000);
  return `about ${minutes} minute${minutes === 1 ? "" : "s"}`;
}

/** The live region's sentence: steps done, the step in progress, time left (the script has a twin). */
export function summaryText(view: StatusView): string {
  const { currentStep, totalSteps, percent } = view.progress;
  let text = totalSteps > 0 ? `${currentStep} of ${totalSteps} steps done (${percent}%).` : "Waiting to start.";
  if (view.currentStepName) text += ` Now: ${label(view.currentStepName)}.`;
  if (view.etaMs !== null && view.etaMs > 0) text += ` Ready in ${formatEta(view.etaMs)}.`;
  return text;
}

function stepRows(view: StatusView): string {
  return view.steps
    .map((s) => `<li class="${s.status}"><span>${escape(label(s.name))}</span><em>${escape(s.status)}</em></li>`)
    .join("");
}

// Twins of summaryText/formatEta and the server's rows, for in-place updates. Plain ES2017, no
// dependencies; a failed poll is retried later and never reloads the page.
const SCRIPT = `(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("status-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var live = { pending: true, provisioning: true };
  function eta(ms) {
    if (ms < 60000) return "less than a minute";
    var m = Math.round(ms / 60000);
    return "about " + m + " minute" + (m === 1 ? "" : "s");
  }
  function summary(v) {
    var p = v.progress;
    var t = p.totalSteps > 0 ? p.currentStep + " of " + p.totalSteps + " steps done (" + p.percent + "%)." : "Waiting to start.";
    if (v.currentStepName) t += " Now: " + (data.labels[v.currentStepName] || v.currentStepName) + ".";
    if (v.etaMs !== null && v.etaMs > 0) t += " Ready in " + eta(v.etaMs) + ".";
    return t;
  }
  function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
  function link(el, href, text) {
    el.textContent = "";
    if (!href) { el.hidden = true; return; }
    var a = document.createElement("a");
    a.href = href; a.textContent = text || href;
    el.appendChild(a); el.hidden = false;
  }
  function render(v) {
    document.title = "Your instance: " + v.status;
    document.body.setAttribute("data-status", v.status);
    setText($("heading"), data.headings[v.status]);
    setText($("message"), v.message);
    setText($("summary"), summary(v));
    var bar = $("progress");
    bar.setAttribute("aria-valuenow", String(v.progress.percent));
    bar.setAttribute("aria-valuetext", v.progress.percent + "%");
    $("bar").style.width = v.progress.percent + "%";
    var list = $("steps");
    var items = v.steps.map(function (s) {
      var li = document.createElement("li");
      li.className = s.status;
      var name = document.createElement("span");
      name.textContent = data.labels[s.name] || s.name;
      var state = document.createElement("em");
      state.textContent = s.status;
      li.appendChild(name); li.appendChild(state);
      return li;
    });
    list.replaceChildren.apply(list, items);
    link($("instance"), v.status === "ready" ? v.instanceUrl : null);
    link($("support"), v.status === "failed" ? data.supportUrl : null, "Contact support");
  }
  function poll() {
    fetch(location.pathname + location.search, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) {
        if (v && v.status) render(v);
        if (!v || live[v.status]) setTimeout(poll, data.pollMs);
      })
      .catch(function () { setTimeout(poll, data.pollMs * 2); });
  }
  if (live[data.status]) setTimeout(poll, data.pollMs);
})();`;

/** JSON for a <script type="application/json"> block: nothing in it can close the element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, "\\u003c");

export function renderStatusPage(view: StatusView, supportUrl: string | undefined): string {
  const inProgress = view.status === "pending" || view.status === "provisioning";
  const percent = view.progress.percent;
  const instance = view.status === "ready" && view.instanceUrl ? view.instanceUrl : null;
  const support = view.status === "failed" && supportUrl ? supportUrl : null;
  const data = {
    status: view.status,
    pollMs: POLL_MS,
    headings: HEADINGS,
    // Every provision step's label: a pending page may not list its steps yet.
    labels: Object.fromEntries([...STEP_LIST, ...view.steps.map((s) => s.name)].map((name) => [name, label(name)])),
    supportUrl: supportUrl ?? null,
  };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${inProgress ? `<noscript><meta http-equiv="refresh" content="${NOSCRIPT_REFRESH_S}"></noscript>` : ""}
<title>Your instance: ${escape(view.status)}</title>
<link rel="icon" href="data:,">
<style>
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}
header,main{max-width:36rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem;padding-bottom:1rem;border-bottom:1px solid #d0d7de;font-weight:600}
h1{font-size:1.5rem;margin:1.5rem 0 .5rem}
a{color:#0645ad;overflow-wrap:anywhere}
.track{height:1rem;border:1px solid #57606a;border-radius:.5rem;background:#eaeef2;overflow:hidden}
#bar{height:100%;background:#1d4ed8;transition:width .3s}
ol{list-style:none;padding:0;margin:1rem 0}
li{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.5rem;padding:.4rem 0;border-bottom:1px solid #d0d7de}
em{font-style:normal;font-weight:600;color:#57606a}
li.succeeded em{color:#116329}li.failed em{color:#a40e26}li.running em,li.retrying em,li.waiting em{color:#7d4e00}
</style></head>
<body data-status="${escape(view.status)}">
<header><span>Brain</span></header>
<main>
<h1 id="heading">${escape(HEADINGS[view.status])}</h1>
<p id="message">${escape(view.message)}</p>
<div aria-live="polite" aria-atomic="true"><p id="summary">${escape(summaryText(view))}</p></div>
<div id="progress" class="track" role="progressbar" aria-label="Setup progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${percent}" aria-valuetext="${percent}%"><div id="bar" style="width:${percent}%"></div></div>
<p id="instance"${instance ? "" : " hidden"}>${instance ? `<a href="${escape(instance)}">${escape(instance)}</a>` : ""}</p>
<ol id="steps" aria-label="Steps">${stepRows(view)}</ol>
<p id="support"${support ? "" : " hidden"}>${support ? `<a href="${escape(support)}">Contact support</a>` : ""}</p>
</main>
<script type="application/json" id="status-data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body></html>`;
}
