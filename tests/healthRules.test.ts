// The health engine's pure rules: status from results, hysteresis, and the round schedule.
import { describe, expect, test } from "vitest";
import type { Id } from "../convex/_generated/dataModel";
import type { CheckResult, HealthMember, InstanceHealthStatus } from "../convex/lib/validators";
import { applyResults, candidateOf, deepChecksToProbe, nextRoundAt, slotOf } from "../convex/model/healthRules";

const thresholds = { failure: 2, success: 2 };
const ok = (at = 0): CheckResult => ({ ok: true, at, detail: "200" });
const bad = (at = 0): CheckResult => ({ ok: false, at, detail: "503" });
const member = (fields: Partial<HealthMember> = {}): HealthMember => ({
  instanceId: "i1" as Id<"instances">,
  plan: "starter",
  streak: 0,
  dueAt: 0,
  checks: {},
  joinedAt: 0,
  ...fields,
});

/** Runs results through applyResults in order and returns each confirmed status after it. */
function statuses(start: HealthMember, sequence: ("up" | "site" | "org")[]): (InstanceHealthStatus | undefined)[] {
  let current = start;
  return sequence.map((step, i) => {
    const at = (i + 1) * 1000;
    const results = step === "up" ? { site: ok(at), backend: ok(at), organization: ok(at) } : step === "site" ? { site: bad(at), backend: ok(at) } : { site: ok(at), backend: ok(at), organization: bad(at) };
    current = applyResults(current, results, at, thresholds).member;
    return current.status;
  });
}

describe("health rules", () => {
  test.each([
    ["all passing", { site: ok(), backend: ok() }, "active"],
    ["the site failing", { site: bad(), backend: ok() }, "down"],
    ["the backend failing", { site: ok(), backend: bad() }, "down"],
    ["only the organization missing", { site: ok(), backend: ok(), organization: bad() }, "degraded"],
    ["only the Pages deployment failed", { site: ok(), backend: ok(), pages: bad() }, "degraded"],
  ] as const)("%s points to %s", (_, checks, expected) => {
    expect(candidateOf(checks)).toBe(expected);
  });

  test("a first passing check makes a new member active at once", () => {
    const verdict = applyResults(member(), { site: ok(), backend: ok() }, 1000, thresholds);
    expect(verdict.member.status).toBe("active");
    expect(verdict.transition).toEqual({ from: undefined, to: "active" });
    expect(verdict.needsConfirmation).toBe(false);
  });

  test("one blip changes nothing but asks for a confirmation re-check", () => {
    const verdict = applyResults(member({ status: "active" }), { site: bad(1000), backend: ok(1000) }, 1000, thresholds);
    expect(verdict.member.status).toBe("active");
    expect(verdict.transition).toBeUndefined();
    expect(verdict.needsConfirmation).toBe(true);
    expect(verdict.member.failingSince).toBe(1000);
  });

  test("the failure threshold of consecutive failures makes an active member down, since the first failure", () => {
    const first = applyResults(member({ status: "active" }), { site: bad(1000), backend: ok(1000) }, 1000, thresholds).member;
    const second = applyResults(first, { site: bad(31_000), backend: ok(31_000) }, 31_000, thresholds);
    expect(second.transition).toEqual({ from: "active", to: "down" });
    expect(second.member.unhealthySince).toBe(1000);
    expect(second.needsConfirmation).toBe(false);
  });

  test("recovery needs the success threshold of consecutive passes, and clears unhealthySince", () => {
    expect(statuses(member({ status: "active" }), ["site", "site", "up", "up"])).toEqual(["active", "down", "down", "active"]);
    let m = member({ status: "down", unhealthySince: 5 });
    m = applyResults(m, { site: ok(), backend: ok() }, 1, thresholds).member;
    const back = applyResults(m, { site: ok(), backend: ok() }, 2, thresholds);
    expect(back.transition).toEqual({ from: "down", to: "active" });
    expect(back.member.unhealthySince).toBeUndefined();
  });

  test("a flapping target never changes its confirmed status", () => {
    const flapping = statuses(member({ status: "active" }), ["site", "up", "site", "up", "site", "up", "site", "up"]);
    expect(new Set(flapping)).toEqual(new Set(["active"]));
    const flappingWhileDown = statuses(member({ status: "down", unhealthySince: 1 }), ["up", "site", "up", "site", "up", "site"]);
    expect(new Set(flappingWhileDown)).toEqual(new Set(["down"]));
  });

  test("a management-view failure alone is degraded, and a site failure on top becomes down after the threshold", () => {
    expect(statuses(member({ status: "active" }), ["org", "org", "site", "site"])).toEqual(["active", "degraded", "degraded", "down"]);
  });

  test("a changed result is worth a history row, an unchanged one is not", () => {
    const healthy = member({ status: "active", checks: { site: ok(), backend: ok() } });
    expect(applyResults(healthy, { site: ok(5), backend: ok(5) }, 5, thresholds).changed).toBe(false);
    expect(applyResults(healthy, { site: bad(5), backend: ok(5) }, 5, thresholds).changed).toBe(true);
  });

  test("deep checks are probed directly when the sweep suspects them or while they fail", () => {
    expect(deepChecksToProbe(member())).toEqual([]);
    expect(deepChecksToProbe(member({ deepSuspect: ["pages"] }))).toEqual(["pages"]);
    expect(deepChecksToProbe(member({ checks: { organization: bad() } }))).toEqual(["organization"]);
  });

  test("a suspect stays suspect until a run has probed that check (a run in flight when the sweep marked it keeps the mark)", () => {
    const suspect = member({ status: "active", deepSuspect: ["organization", "pages"] });
    const unprobed = applyResults(suspect, { site: ok(1), backend: ok(1) }, 1, thresholds).member;
    expect(unprobed.deepSuspect).toEqual(["organization", "pages"]);
    const halfProbed = applyResults(unprobed, { site: ok(2), backend: ok(2), organization: ok(2) }, 2, thresholds).member;
    expect(halfProbed.deepSuspect).toEqual(["pages"]);
    const probed = applyResults(halfProbed, { site: ok(3), backend: ok(3), pages: ok(3) }, 3, thresholds).member;
    expect(probed.deepSuspect).toBeUndefined();
  });

  test("rounds fall on the batch's slot, one interval apart, strictly after now", () => {
    const interval = 300_000;
    const slot = slotOf(3);
    const first = nextRoundAt(slot, interval, 1_000_000);
    expect(first).toBeGreaterThan(1_000_000);
    expect(first - 1_000_000).toBeLessThanOrEqual(interval);
    expect(nextRoundAt(slot, interval, first)).toBe(first + interval);
    expect((first - Math.floor(slot * interval)) % interval).toBe(0);
  });

  test("slots of any number of batches spread over the whole interval", () => {
    const slots = Array.from({ length: 100 }, (_, n) => slotOf(n)).sort((a, b) => a - b);
    const gaps = slots.slice(1).map((s, i) => s - slots[i]);
    expect(Math.max(...gaps)).toBeLessThan(0.03);
    expect(slots[0]).toBeGreaterThanOrEqual(0);
    expect(slots[slots.length - 1]).toBeLessThan(1);
  });
});
