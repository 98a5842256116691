// The registry is the one place a step or provider is described. What Convex or the offline
// codegen needs spelled out statically (convex.config.ts, the codegen's component map, the
// stored validators) is held to it here.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { EnvSchema } from "../convex/lib/config";
import { PROVISION_STEP_NAMES, STEP_NAMES, vOrphanProvider, type JobKind, type StepName } from "../convex/lib/validators";
import { OPERATIONS } from "../convex/providers/operations";
import {
  ALL_STEPS,
  CIRCUIT_PROVIDERS,
  JOB_KINDS,
  OWNER_PROVIDERS,
  POOL_NAMES,
  PROVIDER_NAMES,
  PROVIDERS,
  recordedField,
  STEP_LIST,
  STEPS,
  UNDOABLE,
} from "../convex/registry";

const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");
const literalsOf = (validator: { members: { value: string }[] }) => validator.members.map((m) => m.value);

describe("registry", () => {
  test("convex.config.ts declares exactly the work pools the registry names, and the health pool", () => {
    const declared = [...read("../convex/convex.config.ts").matchAll(/app\.use\(workpool, \{ name: "(\w+)" \}\)/g)].map((m) => m[1]);
    expect(new Set(declared)).toEqual(new Set([...POOL_NAMES, "healthPool"]));
    expect(declared).toHaveLength(POOL_NAMES.length + 1);
  });

  test("the offline codegen types every pool the registry names, the health pool, the rate limiter and the health counts", () => {
    const source = read("../scripts/codegen-offline.mjs");
    const block = source.slice(source.indexOf("export const COMPONENTS"), source.indexOf("};", source.indexOf("export const COMPONENTS")));
    const names = [...block.matchAll(/^\s+(\w+): "@convex-dev\/[\w-]+",?$/gm)].map((m) => m[1]);
    expect(new Set(names)).toEqual(new Set([...POOL_NAMES, "healthPool", "rateLimiter", "healthCounts"]));
  });

  test("the provision job's steps are listed in the stored order, and every step is in the registry", () => {
    expect(STEP_LIST).toEqual([...PROVISION_STEP_NAMES]);
    expect(JOB_KINDS.provision.steps).toEqual([...PROVISION_STEP_NAMES]);
    expect(ALL_STEPS).toEqual([...STEP_NAMES]);
  });

  test("each job kind is a DAG whose needs stay inside the kind and come earlier in its list", () => {
    for (const [kind, spec] of Object.entries(JOB_KINDS) as [JobKind, (typeof JOB_KINDS)[JobKind]][]) {
      const steps = spec.steps as readonly StepName[];
      steps.forEach((name, i) => {
        for (const need of STEPS[name].needs as readonly StepName[]) {
          expect(steps, `${kind}: ${name} needs ${need}`).toContain(need);
          expect(steps.indexOf(need), `${kind}: ${name} needs ${need}`).toBeLessThan(i);
        }
      });
    }
  });

  test("each job kind ends in its one inline step (the transition that settles the instance)", () => {
    for (const [kind, spec] of Object.entries(JOB_KINDS) as [JobKind, (typeof JOB_KINDS)[JobKind]][]) {
      const steps = spec.steps as readonly StepName[];
      const inline = steps.filter((name) => STEPS[name].runs === "inline");
      expect(inline, kind).toEqual([steps[steps.length - 1]]);
    }
  });

  test("every step belongs to exactly one job kind", () => {
    const listed = Object.values(JOB_KINDS).flatMap((spec) => [...spec.steps]);
    expect([...listed].sort()).toEqual([...STEP_NAMES].sort());
  });

  test("only provision jobs compensate", () => {
    for (const [kind, spec] of Object.entries(JOB_KINDS)) expect(spec.compensates, kind).toBe(kind === "provision");
  });

  test("the deprovision job runs the provision undos in reverse order, each on its undo's provider", () => {
    const steps = JOB_KINDS.deprovision.steps as readonly StepName[];
    const deletions = steps.filter((name) => STEPS[name].runs === "action");
    const deletes = deletions.map((name) => (STEPS[name] as { deletes?: StepName }).deletes);
    const undone = PROVISION_STEP_NAMES.filter((name) => UNDOABLE.some((u) => u.step === name));
    expect(deletes).toEqual([...undone].reverse());
    for (const name of deletions) {
      const undo = UNDOABLE.find((u) => u.step === (STEPS[name] as { deletes?: StepName }).deletes)!;
      expect(STEPS[name].provider, name).toBe(undo.provider);
    }
    // Only deprovision steps delete anything.
    for (const name of ALL_STEPS) if (!steps.includes(name)) expect((STEPS[name] as { deletes?: StepName }).deletes, name).toBeUndefined();
  });

  test("every step has a label, and every provider-calling step names an operation faults can target", () => {
    for (const name of ALL_STEPS) {
      const spec = STEPS[name] as { label: string; provider: string; operation?: string; runs: string };
      expect(spec.label.length).toBeGreaterThan(0);
      if (spec.provider !== "brain") expect(OPERATIONS).toContain(spec.operation);
    }
  });

  test("each provider that owns resources has exactly one step that records and undoes them, unless they are retired", () => {
    const retired = OWNER_PROVIDERS.filter((p) => "retired" in PROVIDERS[p].owned);
    // Stripe: no step makes a webhook endpoint any more; the ones earlier versions made are orphans.
    expect(retired).toEqual(["stripe"]);
    for (const provider of OWNER_PROVIDERS) {
      if (retired.includes(provider)) {
        expect(UNDOABLE.filter((u) => u.provider === provider)).toHaveLength(0);
        expect(() => recordedField(provider)).toThrow();
        continue;
      }
      expect(UNDOABLE.filter((u) => u.provider === provider)).toHaveLength(1);
      expect(typeof recordedField(provider)).toBe("string");
    }
    expect(new Set(UNDOABLE.map((u) => u.provider))).toEqual(new Set(OWNER_PROVIDERS.filter((p) => !retired.includes(p))));
    // Every undo is a provision step's.
    for (const undo of UNDOABLE) expect(PROVISION_STEP_NAMES).toContain(undo.step);
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
    for (const step of ALL_STEPS) expect(known).toContain(`STEP_DEADLINE_MS_${step.toUpperCase()}`);
  });

  test("only the engine's own pseudo-provider has no circuit", () => {
    expect(PROVIDER_NAMES.filter((p) => !CIRCUIT_PROVIDERS.includes(p))).toEqual(["brain"]);
  });
});
