// Runs Brain's real Convex functions outside vitest: convex-test in a plain Node
// process, with the module maps that import.meta.glob would build under Vite.
// Used by `npm start` (scripts/serve.ts); scheduled functions run on real timers.
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { convexTest } from "convex-test";
import type { GenericSchema, SchemaDefinition } from "convex/server";
import { POOL_NAMES } from "../convex/registry.ts";

type ModuleMap = Record<string, () => Promise<unknown>>;

const ROOT = resolve(import.meta.dirname, "..");

/** Every .ts/.js module under `dir` except tests, as lazy imports keyed by path. */
function moduleMap(dir: string): ModuleMap {
  const map: ModuleMap = {};
  const walk = (current: string) => {
    for (const entry of readdirSync(current)) {
      const path = join(current, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(ts|js)$/.test(entry) && !/\.test\.ts$/.test(entry) && !entry.endsWith(".d.ts")) {
        map[path] = () => import(pathToFileURL(path).href);
      }
    }
  };
  walk(dir);
  return map;
}

async function componentSchema(dir: string) {
  const module = (await import(pathToFileURL(join(dir, "schema.ts")).href)) as { default: SchemaDefinition<GenericSchema, boolean> };
  return module.default;
}

export { POOL_NAMES };

export async function startEmbeddedBackend() {
  const schema = ((await import("../convex/schema.ts")) as { default: SchemaDefinition<GenericSchema, boolean> }).default;
  const t = convexTest({ schema, modules: moduleMap(join(ROOT, "convex")) });

  const packages = join(ROOT, "node_modules", "@convex-dev");
  const workpool = join(packages, "workpool", "src", "component");
  const batchWorker = join(packages, "batch-worker", "src", "component");
  const rateLimiter = join(packages, "rate-limiter", "src", "component");
  const [workpoolSchema, batchWorkerSchema, rateLimiterSchema] = await Promise.all([
    componentSchema(workpool),
    componentSchema(batchWorker),
    componentSchema(rateLimiter),
  ]);
  const withBatchWorker = (name: string, schema: SchemaDefinition<GenericSchema, boolean>, dir: string) => {
    t.registerComponent(name, schema, moduleMap(dir));
    t.registerComponent(`${name}/batchWorker`, batchWorkerSchema, moduleMap(batchWorker));
  };
  for (const name of POOL_NAMES) withBatchWorker(name, workpoolSchema, workpool);
  withBatchWorker("rateLimiter", rateLimiterSchema, rateLimiter);
  return t;
}
