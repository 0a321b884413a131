// Builds PlanInput values for pure tests: no Docker, no disk beyond the templates.
import { parseConfigText } from "../../src/config/load.js";
import { resolveRuntime } from "../../src/config/resolve.js";
import { DEFAULT_LIMITS, type PlanInput } from "../../src/plan/sandbox-plan.js";
import { claudeCode } from "../../src/runtimes/claude-code.js";

export function planInput(toml: string, overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    loaded: parseConfigText(toml, "/project/perstack.toml"),
    expertKey: "main",
    runtime: resolveRuntime("claude-code", undefined),
    adapter: claudeCode,
    query: "do the thing",
    workspace: "/project",
    perstackDir: "/project/perstack",
    envNames: [],
    baseImages: {
      debian: { role: "debian", ref: "debian:bookworm-slim" },
      node: { role: "node", ref: "node:22-bookworm-slim" },
    },
    caBundle: "",
    limits: DEFAULT_LIMITS,
    user: { uid: 1000, gid: 1000 },
    jobId: "job1",
    runId: "run1abcdefghijk",
    ...overrides,
  };
}
