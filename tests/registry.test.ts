// The registry is the one place a step or provider is described. What Convex or the offline
// codegen needs spelled out statically (convex.config.ts, the codegen's component map, the
// stored validators) is held to it here.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { EnvSchema } from "../convex/lib/config";
import { STEP_NAMES, vOrphanProvider } from "../convex/lib/validators";
import { OPERATIONS } from "../convex/providers/operations";
import { CIRCUIT_PROVIDERS, OWNER_PROVIDERS, POOL_NAMES, PROVIDER_NAMES, PROVIDERS, recordedField, STEP_LIST, STEPS, UNDOABLE } from "../convex/registry";

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const literalsOf = (validator: { members: { value: string }[] }) => validator.members.map((m) => m.value);

describe("registry", () => {
  test("convex.config.ts declares exactly the work pools the registry names", () => {
    const declared = [...read("../convex/convex.config.ts").matchAll(/app\.use\(workpool, \{ name: "(\w+)" \}\)/g)].map((m) => m[1]);
    expect(new Set(declared)).toEqual(new Set(POOL_NAMES));
    expect(declared).toHaveLength(POOL_NAMES.length);
  });

  test("the offline codegen types every pool the registry names, and the rate limiter", () => {
    const source = read("../scripts/codegen-offline.mjs");
    const block = source.slice(source.indexOf("export const COMPONENTS"), source.indexOf("};", source.indexOf("export const COMPONENTS")));
    const names = [...block.matchAll(/^\s+(\w+): "@convex-dev\/[\w-]+",?$/gm)].map((m) => m[1]);
    expect(new Set(names)).toEqual(new Set([...POOL_NAMES, "rateLimiter"]));
  });

  test("steps are listed in the stored order, and every step needs only steps listed before it", () => {
    expect(STEP_LIST).toEqual([...STEP_NAMES]);
    STEP_LIST.forEach((name, i) => {
      for (const need of STEPS[name].needs as readonly string[]) expect(STEP_LIST.indexOf(need as never)).toBeLessThan(i);
    });
  });

  test("every step has a label, and every provider-calling step names an operation faults can target", () => {
    for (const name of STEP_LIST) {
      const spec = STEPS[name] as { label: string; provider: string; operation?: string; runs: string };
      expect(spec.label.length).toBeGreaterThan(0);
      if (spec.provider !== "brain") expect(OPERATIONS).toContain(spec.operation);
    }
  });

  test("each provider that owns resources has exactly one step that records and undoes them", () => {
    for (const provider of OWNER_PROVIDERS) {
      expect(UNDOABLE.filter((u) => u.provider === provider)).toHaveLength(1);
      expect(typeof recordedField(provider)).toBe("string");
    }
    expect(new Set(UNDOABLE.map((u) => u.provider))).toEqual(new Set(OWNER_PROVIDERS));
  });

  test("the stored validator of resource-owning providers (orphans, cleanup tasks) lists exactly the registry's owners", () => {
    expect(new Set(literalsOf(vOrphanProvider as never))).toEqual(new Set(OWNER_PROVIDERS));
  });

  test("every variable the registry names is in the configuration schema", () => {
    const known = new Set(Object.keys(EnvSchema.shape));
    for (const provider of PROVIDER_NAMES) {
      const spec = PROVIDERS[provider] as { pool: { concurrency: { variable: string } }; rate?: { variable: string }; modeVariable?: string; credentials: readonly string[] };
      for (const variable of [spec.pool.concurrency.variable, spec.rate?.variable, spec.modeVariable, ...spec.credentials]) {
        if (variable) expect(known, variable).toContain(variable);
      }
    }
    for (const step of STEP_LIST) expect(known).toContain(`STEP_DEADLINE_MS_${step.toUpperCase()}`);
  });

  test("only the engine's own pseudo-provider has no circuit", () => {
    expect(PROVIDER_NAMES.filter((p) => !CIRCUIT_PROVIDERS.includes(p))).toEqual(["brain"]);
  });
});
