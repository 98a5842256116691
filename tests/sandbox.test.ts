// The sandbox providers' state (convex/sandbox.ts) and the sandbox adapters' listing: a list
// is read page by page to the end, so an orphan scan sees every simulated resource.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { internal } from "../convex/_generated/api";
import { setupBackend, type TestBackend } from "./harness";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

/** A name `brain-<id>` whose id is shaped like an instance id no instance has (convex-test's id form). */
const goneInstanceName = (i: number) => `brain-${String(90_000 + i).padStart(23, "0")}instances`;

/** Inserts `count` Brain-named Pages projects straight into the sandbox, as leftovers of gone instances. */
async function seedPagesProjects(t: TestBackend, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => goneInstanceName(i));
  await t.run(async (ctx) => {
    for (const [i, name] of names.entries()) {
      await ctx.db.insert("sandboxResources", {
        provider: "cloudflare",
        kind: "pagesProject",
        name,
        externalId: `pagesProject_seed${i}`,
        attributes: { subdomain: `${name}.pages.dev` },
        createdAt: 0,
        updatedAt: 0,
      });
    }
  });
  return names;
}

describe("sandbox listing", () => {
  test("an orphan scan finds every one of more than a thousand leftover Pages projects", async () => {
    const t = setupBackend();
    const names = await seedPagesProjects(t, 1_100);

    const { orphans } = await t.action(internal.orphans.scanOrphans, {});

    const pages = orphans.filter((o) => o.provider === "cloudflare");
    expect(pages).toHaveLength(1_100);
    expect(new Set(pages.map((o) => o.resourceId))).toEqual(new Set(names));
  });

  test("list answers one page at a time with a cursor to the next, and the pages cover every resource once", async () => {
    const t = setupBackend();
    const names = await seedPagesProjects(t, 1_100);
    const list = (cursor: string | null) =>
      t.mutation(internal.sandbox.applyOperation, {
        operation: "cloudflare.listPagesProjects",
        provider: "cloudflare",
        kind: "pagesProject",
        name: "",
        action: "list",
        cursor,
      });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    for (;;) {
      const page = await list(cursor);
      if (page.result !== "list") throw new Error(`expected a list page, got ${page.result}`);
      pages++;
      expect(page.resources.length).toBeLessThanOrEqual(1_000);
      seen.push(...page.resources.map((r) => r.name));
      if (page.isDone) break;
      cursor = page.continueCursor;
    }

    expect(pages).toBeGreaterThan(1);
    expect(seen).toHaveLength(1_100);
    expect(new Set(seen)).toEqual(new Set(names));
  });

  test("an injected fault on a list still fails the listing, and the orphan scan with it", async () => {
    const t = setupBackend();
    await seedPagesProjects(t, 3);
    await t.mutation(internal.sandbox.injectFault, { operation: "cloudflare.listPagesProjects", kind: "transient", times: 1 });

    await expect(t.action(internal.orphans.scanOrphans, {})).rejects.toMatchObject({ data: { code: "PROVIDER_UNAVAILABLE" } });
    expect((await t.action(internal.orphans.scanOrphans, {})).orphans.filter((o) => o.provider === "cloudflare")).toHaveLength(3);
  });
});
