// An interrupt that arrives after the agent container is created but before it starts is not lost: the agent never
// runs, and everything the run created is removed. Driven through runSandbox on the real engine.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { buildSandboxPlan } from "../../src/plan/sandbox-plan.js";
import { resolveRuntime } from "../../src/config/resolve.js";
import { perstack } from "../../src/runtimes/perstack.js";
import { overridesFromEnv, resolveBaseImages } from "../../src/sandbox/base-images.js";
import { runSandbox } from "../../src/sandbox/run-sandbox.js";
import { requireDocker } from "../support/docker.js";
import { planInput } from "../support/plan-input.js";

const docker = await requireDocker();

describe.skipIf(!docker)("runSandbox and interrupts", () => {
  it("an interrupt between create and start: the agent never starts, nothing is left", async () => {
    const engine = docker!;
    const dir = mkdtempSync(join(tmpdir(), "perstack-abort-"));
    mkdirSync(join(dir, "perstack"));
    try {
      const plan = buildSandboxPlan(
        planInput(`[experts."main"]\ninstruction = "x"\n`, {
          runtime: resolveRuntime("perstack", undefined),
          adapter: perstack,
          baseImages: await resolveBaseImages(engine, overridesFromEnv()),
          workspace: dir,
          perstackDir: join(dir, "perstack"),
          runId: `abort${Date.now().toString(36)}`,
          jobId: `abortjob${Date.now().toString(36)}`,
        }),
      );
      const controller = new AbortController();
      const statuses: string[] = [];
      let output = "";
      const sink = () => new Writable({ write: (chunk: Buffer, _e, callback) => { output += chunk.toString(); callback(); } });
      const result = await runSandbox(engine, plan, {
        env: { ANTHROPIC_API_KEY: "unused" },
        gatewayEnv: { PERSTACK_GATEWAY_TOKEN: "t".repeat(32), ANTHROPIC_API_KEY: "unused" },
        filesDir: join(dir, "files"),
        buildProgress: () => {},
        containerStatus: (service, status) => statuses.push(`${service} ${status}`),
        agentStdout: sink(),
        agentStderr: sink(),
        proxyLogLine: () => {},
        signal: controller.signal,
        // Called with the created, not yet started, agent container: the moment to interrupt.
        workspace: { mounts: [], fill: async () => controller.abort() },
      });
      expect(result.aborted).toBe(true);
      expect(statuses).not.toContain("agent running");
      expect(output).toBe("");
      const filters = { label: [`perstack.run=${plan.runId}`] };
      expect(await engine.listContainers({ all: true, filters })).toEqual([]);
      expect(await engine.listNetworks({ filters })).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
