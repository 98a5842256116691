// How a fake tenant URL answers a health probe (a Pages site, a deployment's /version), set per
// site or deployment by name: the outages Brain's health checks must notice.
import type { FakeResponse } from "./base";

/** "up": answers as usual; "down": 503; "hang": never answers (a probe times out). */
export type ProbeMode = "up" | "down" | "hang";

export type ProbeModes = {
  /** How the site or backend named `name` answers from now on. */
  setMode(name: string, mode: ProbeMode): void;
  /** How every site or backend without a mode of its own answers (default "up"). */
  setDefaultMode(mode: ProbeMode): void;
  modeOf(name: string): ProbeMode;
  /** Back to "up" for everything. */
  reset(): void;
};

export function probeModes(): ProbeModes {
  const modes = new Map<string, ProbeMode>();
  let defaultMode: ProbeMode = "up";
  return {
    setMode: (name, mode) => void modes.set(name, mode),
    setDefaultMode: (mode) => void (defaultMode = mode),
    modeOf: (name) => modes.get(name) ?? defaultMode,
    reset: () => {
      modes.clear();
      defaultMode = "up";
    },
  };
}

/** The answer in `mode`: `up()` when up, else 503 with `downBody`, or no answer at all. */
export function answerInMode(mode: ProbeMode, up: () => FakeResponse, downBody: unknown): FakeResponse {
  if (mode === "hang") return { status: 0, hang: true };
  if (mode === "down") return { status: 503, body: downBody };
  return up();
}
