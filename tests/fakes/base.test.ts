// @vitest-environment node
// The rate-limit window accounting every fake shares (tests/fakes/base.ts), which bench:burst
// reads to report how much of a provider's limit a run used, in the clock the fake enforces.
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { startFakeServer, type FakeServer } from "./base";

let fake: FakeServer;

beforeEach(async () => {
  fake = await startFakeServer({
    name: "plain",
    routes: [{ method: "GET", path: "/ping", handler: () => ({ status: 200, body: { ok: true } }) }],
    errorBody: (status, message) => ({ status, message }),
  });
});
afterEach(async () => {
  await fake.close();
});

const ping = () => fetch(`${fake.url}/ping`);

describe("rate-limit window accounting", () => {
  test("each request records how full the window was when it arrived, and a 429 is marked", async () => {
    fake.setRateLimit({ requests: 2, windowMs: 60_000 });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await ping()).status);
    expect(statuses).toEqual([200, 200, 429]);
    expect(fake.requests.map((r) => [r.windowCount, r.rateLimited ?? false])).toEqual([
      [1, false],
      [2, false],
      [3, true],
    ]);
    expect(fake.stats()).toMatchObject({ rateLimited: 1, windowPeak: 2 });
  });

  test("without a rate limit nothing is counted", async () => {
    await ping();
    expect(fake.requests[0].windowCount).toBeUndefined();
    expect(fake.stats().windowPeak).toBe(0);
  });
});
