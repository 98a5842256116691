// @vitest-environment node
// The status page in a real browser: Debian's Chromium, driven by playwright-core, against the
// real Convex functions (the embedded backend `npm start` uses) served over HTTP on 127.0.0.1.
// One page follows a checkout from pending (payment not yet cleared) through provisioning to
// ready, another to failed (a permanent sandbox fault), each without a reload; screenshots of
// each state go to test-artifacts/status-page/. .ci/run installs Chromium, so a missing
// browser fails this test rather than skipping it.
import { existsSync, mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { internal } from "../convex/_generated/api";
import { startEmbeddedBackend } from "../scripts/embedded-backend";
import { checkoutEvent, signedStripeRequest, TEST_ADMIN_API_TOKEN, TEST_STRIPE_WEBHOOK_SECRET } from "./harness";

const CHROMIUM = "/usr/bin/chromium";
// The flags this machine needs (no sandbox as root, no background calls to Google's hosts).
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const ARTIFACTS = resolve(import.meta.dirname, "..", "test-artifacts", "status-page");
const SUPPORT_URL = "https://support.example.com/brain";
const STATE_TIMEOUT_MS = 30_000;
const ENV = {
  PROVIDER_MODE: "sandbox",
  STRIPE_WEBHOOK_SECRET: TEST_STRIPE_WEBHOOK_SECRET,
  ADMIN_API_TOKEN: TEST_ADMIN_API_TOKEN,
  // Slow enough that provisioning spans several of the page's 2 s polls.
  SANDBOX_LATENCY_MS: "800",
  SUPPORT_URL,
};

type Backend = Awaited<ReturnType<typeof startEmbeddedBackend>>;
let backend: Backend;
let server: Server;
let base: string;
let browser: Browser;
const saved: Record<string, string | undefined> = {};

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The HTTP routes of the embedded backend on a free port of 127.0.0.1, as scripts/serve.ts serves them. */
async function serve(t: Backend): Promise<{ server: Server; base: string }> {
  const http = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      const headers = new Headers();
      for (const [key, value] of Object.entries(request.headers)) {
        if (typeof value === "string") headers.set(key, value);
      }
      const method = request.method ?? "GET";
      const answer = await t.fetch(request.url ?? "/", {
        method,
        headers,
        ...(method === "GET" || method === "HEAD" ? {} : { body: new Uint8Array(body) }),
      });
      response.writeHead(answer.status, Object.fromEntries(answer.headers.entries()));
      response.end(Buffer.from(await answer.arrayBuffer()));
    })().catch((error: unknown) => {
      response.writeHead(500, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { code: "INTERNAL", message: String(error) } }));
    });
  });
  await new Promise<void>((done) => http.listen(0, "127.0.0.1", done));
  const address = http.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return { server: http, base: `http://127.0.0.1:${address.port}` };
}

async function post(event: unknown) {
  const init = signedStripeRequest(event);
  const response = await fetch(`${base}/stripe/webhook`, init as RequestInit);
  expect(response.status).toBe(200);
}

/** A page at 375 px (a phone) that records every console error and uncaught exception. */
async function openPage(errors: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 1 });
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  return page;
}

const statusOfPage = (page: Page) => page.getAttribute("body", "data-status");
const waitForStatus = (page: Page, status: string) =>
  page.waitForSelector(`body[data-status="${status}"]`, { timeout: STATE_TIMEOUT_MS });
const shoot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** Landmarks, the live region, the progress bar's value and a layout that fits 375 px. */
async function expectAccessible(page: Page, percent: number | null) {
  expect(await page.locator("header").count()).toBe(1);
  expect(await page.locator("main").count()).toBe(1);
  expect(await page.locator("main h1").count()).toBe(1);
  expect(await page.locator('[aria-live="polite"] #summary').count()).toBe(1);
  const progress = page.locator("#progress");
  expect(await progress.getAttribute("role")).toBe("progressbar");
  expect(await progress.getAttribute("aria-label")).toBeTruthy();
  const now = Number(await progress.getAttribute("aria-valuenow"));
  if (percent === null) expect(now).toBeGreaterThanOrEqual(0);
  else expect(now).toBe(percent);
  expect(await page.locator('meta[name="viewport"]').getAttribute("content")).toContain("width=device-width");
  // No sideways scrolling on a phone.
  expect(await page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")).toBe(true);
  // WCAG AA text contrast (4.5:1) for every element holding text, against its painted background.
  const lowContrast = (await page.evaluate(CONTRAST_CHECK)) as string[];
  expect(lowContrast).toEqual([]);
}

// Plain JavaScript evaluated in the page (a string, so no compiler helpers leak into it).
const CONTRAST_CHECK = `(() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || el.closest("[hidden]") || ["SCRIPT", "STYLE"].includes(el.tagName)) continue;
    const a = lum(rgb(getComputedStyle(el).color).slice(0, 3));
    const b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) bad.push(el.tagName + "#" + el.id + " " + ratio.toFixed(2));
  }
  return bad;
})()`;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y --no-install-recommends chromium; .ci/run does)`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [key, value] of Object.entries(ENV)) {
    saved[key] = process.env[key];
    process.env[key] = value;
  }
  backend = await startEmbeddedBackend();
  ({ server, base } = await serve(backend));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((done) => (server ? server.close(done) : done(undefined)));
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe("status page in headless Chromium", () => {
  test("follows a checkout from pending through provisioning to ready in place, accessible at 375 px, with no console errors", async () => {
    const errors: string[] = [];
    const page = await openPage(errors);
    // Paid later (bank debit): the page exists and shows pending until the payment clears.
    const unpaid = checkoutEvent({ paymentStatus: "unpaid" });
    const sessionId = unpaid.data.object.id;
    await post(unpaid);
    await page.goto(`${base}/status?session_id=${sessionId}`);
    expect(await statusOfPage(page)).toBe("pending");
    await expectAccessible(page, 0);
    expect(await page.locator("#summary").textContent()).toBe("Waiting to start.");
    await shoot(page, "1-pending");
    // A reload would drop this marker: its survival shows the page updated in place.
    await page.evaluate("window.__sameDocument = 'kept'");

    await post(checkoutEvent({ sessionId, type: "checkout.session.async_payment_succeeded", created: unpaid.created + 1 }));
    await waitForStatus(page, "provisioning");
    await expectAccessible(page, null);
    expect(await page.locator("#summary").textContent()).toMatch(/^\d of 9 steps done \(\d+%\)\. Now: .+\. Ready in .+\.$/);
    expect(await page.locator("#steps li").count()).toBe(9);
    await shoot(page, "2-provisioning");

    await waitForStatus(page, "ready");
    await expectAccessible(page, 100);
    expect(await page.locator("h1").textContent()).toBe("Your instance is ready");
    expect(await page.locator("#summary").textContent()).toBe("9 of 9 steps done (100%).");
    expect(await page.locator("#instance a").getAttribute("href")).toMatch(/^https:\/\/brain-[a-z0-9-]+\.pages\.dev/);
    expect(await page.locator("#steps li.succeeded").count()).toBe(9);
    expect(await page.title()).toBe("Your instance: ready");
    await shoot(page, "3-ready");
    expect(await page.evaluate("window.__sameDocument")).toBe("kept");
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  test("turns to failed in place with a support link when a step fails for good", async () => {
    const errors: string[] = [];
    const page = await openPage(errors);
    const unpaid = checkoutEvent({ paymentStatus: "unpaid" });
    const sessionId = unpaid.data.object.id;
    await post(unpaid);
    await page.goto(`${base}/status?session_id=${sessionId}`);
    expect(await statusOfPage(page)).toBe("pending");
    await page.evaluate("window.__sameDocument = 'kept'");

    await backend.mutation(internal.sandbox.injectFault, { operation: "pagesProject", kind: "permanent", times: 1 });
    await post(checkoutEvent({ sessionId, type: "checkout.session.async_payment_succeeded", created: unpaid.created + 1 }));
    await waitForStatus(page, "failed");
    await expectAccessible(page, null);
    expect(await page.locator("h1").textContent()).toBe("Setup failed");
    expect(await page.locator("#support a").getAttribute("href")).toBe(SUPPORT_URL);
    expect(await page.locator("#steps li.failed").count()).toBeGreaterThanOrEqual(1);
    expect(await page.isVisible("#instance")).toBe(false);
    await shoot(page, "4-failed");
    expect(await page.evaluate("window.__sameDocument")).toBe("kept");
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  test("without JavaScript the page is complete and reloads itself while work is in progress", async () => {
    const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 375, height: 812 } });
    const page = await context.newPage();
    const unpaid = checkoutEvent({ paymentStatus: "unpaid" });
    await post(unpaid);
    await page.goto(`${base}/status?session_id=${unpaid.data.object.id}`);
    expect(await page.locator("h1").textContent()).toBe("Setting up your instance");
    expect(await page.locator("#progress").getAttribute("aria-valuenow")).toBe("0");
    expect(await page.content()).toMatch(/<noscript><meta http-equiv="refresh" content="\d+"><\/noscript>/);
    await context.close();
  }, 30_000);
});
