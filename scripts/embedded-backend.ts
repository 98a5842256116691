// Runs Brain's real Convex functions outside vitest: convex-test in a plain Node
// process, with the module maps that import.meta.glob would build under Vite.
// Used by `npm start` (scripts/serve.ts); scheduled functions run on real timers, and
// startEmbeddedCrons runs convex/crons.ts on them too (convex-test never runs crons).
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { convexTest } from "convex-test";
import { makeFunctionReference, type GenericSchema, type SchemaDefinition } from "convex/server";
import { POOL_NAMES } from "../convex/registry.ts";
import { startCronRunner, type CronJobs, type CronRunnerOptions } from "./cron-runner.ts";

type ModuleMap = Record<string, () => Promise<unknown>>;

const ROOT = resolve(import.meta.dirname, "..");

/** Every .ts/.js module under `dir` except tests, as lazy imports keyed by path; `extra` (module file name → import) added at its root. */
function moduleMap(dir: string, extra: ModuleMap = {}): ModuleMap {
  const map: ModuleMap = Object.fromEntries(Object.entries(extra).map(([name, load]) => [join(dir, name), load]));
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

/** The work pools convex.config.ts declares: one per provider, and the health checks' pool. */
export const EMBEDDED_POOL_NAMES: readonly string[] = [...POOL_NAMES, "healthPool"];
/** The fleet health counts (@convex-dev/aggregate), as convex.config.ts names them. */
export const HEALTH_COUNTS_COMPONENT = "healthCounts";

export { POOL_NAMES };

/** The components startEmbeddedBackend registered (by path, e.g. "healthPool/batchWorker"), with their tables. */
export type EmbeddedComponent = { path: string; tables: string[] };

/**
 * Starts the backend. `extraModules` (module file name → import) are added to the root and to
 * every component, for tools that must look inside them (the fuzzer reads every table); npm
 * start passes none, so it serves exactly what deploys.
 */
export async function startEmbeddedBackend(options: { extraModules?: ModuleMap } = {}) {
  const extra = options.extraModules ?? {};
  const schema = (await import("../convex/schema.ts")).default;
  const t = convexTest({ schema, modules: moduleMap(join(ROOT, "convex"), extra) });
  const components: EmbeddedComponent[] = [];

  const packages = join(ROOT, "node_modules", "@convex-dev");
  const workpool = join(packages, "workpool", "src", "component");
  const batchWorker = join(packages, "batch-worker", "src", "component");
  const rateLimiter = join(packages, "rate-limiter", "src", "component");
  const aggregate = join(packages, "aggregate", "src", "component");
  const [workpoolSchema, batchWorkerSchema, rateLimiterSchema, aggregateSchema] = await Promise.all([
    componentSchema(workpool),
    componentSchema(batchWorker),
    componentSchema(rateLimiter),
    componentSchema(aggregate),
  ]);
  const register = (path: string, schema: SchemaDefinition<GenericSchema, boolean>, dir: string) => {
    t.registerComponent(path, schema, moduleMap(dir, extra));
    components.push({ path, tables: Object.keys(schema.tables) });
  };
  const withBatchWorker = (name: string, schema: SchemaDefinition<GenericSchema, boolean>, dir: string) => {
    register(name, schema, dir);
    register(`${name}/batchWorker`, batchWorkerSchema, batchWorker);
  };
  for (const name of EMBEDDED_POOL_NAMES) withBatchWorker(name, workpoolSchema, workpool);
  withBatchWorker("rateLimiter", rateLimiterSchema, rateLimiter);
  // The aggregate's own config uses batch-worker too (its buffered writes), so it gets one like the pools.
  withBatchWorker(HEALTH_COUNTS_COMPONENT, aggregateSchema, aggregate);
  registeredComponents.set(t, components);
  return t;
}

const registeredComponents = new WeakMap<object, EmbeddedComponent[]>();

/** The components registered on `t` by startEmbeddedBackend, and their tables. */
export function embeddedComponents(t: object): EmbeddedComponent[] {
  return registeredComponents.get(t) ?? [];
}

type EmbeddedBackend = Awaited<ReturnType<typeof startEmbeddedBackend>>;
type RegisteredFunction = { isMutation?: boolean; isAction?: boolean; isQuery?: boolean };

/** Whether "module/path:export" names a mutation or an action (crons may point at either). */
async function functionKind(functionName: string): Promise<"mutation" | "action"> {
  const [modulePath = "", exportName = "default"] = functionName.split(":");
  const module = (await import(pathToFileURL(join(ROOT, "convex", `${modulePath}.ts`)).href)) as Record<string, unknown>;
  const registered = module[exportName] as RegisteredFunction | undefined;
  if (registered?.isMutation) return "mutation";
  if (registered?.isAction) return "action";
  throw new Error(`cron target ${functionName} is not a mutation or an action`);
}

/**
 * Runs the jobs convex/crons.ts declares against the embedded backend, each on its own schedule
 * (`jobs` defaults to convex/crons.ts). Stop the returned runner before exiting.
 */
export async function startEmbeddedCrons(t: EmbeddedBackend, options: CronRunnerOptions & { jobs?: CronJobs } = {}) {
  const jobs = options.jobs ?? ((await import("../convex/crons.ts")) as { default: CronJobs }).default;
  return startCronRunner(
    jobs,
    async ({ functionName, args }) => {
      const kind = await functionKind(functionName);
      return kind === "mutation"
        ? t.mutation(makeFunctionReference<"mutation">(functionName), args)
        : t.action(makeFunctionReference<"action">(functionName), args);
    },
    options,
  );
}
