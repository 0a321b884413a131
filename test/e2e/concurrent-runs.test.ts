// Issue 12: many runs on one engine. 24 trivial runs of the built-in runtime at once all complete and leave nothing
// behind (their networks come from the subnet pool, not Docker's ~30 default ones); with PERSTACK_MAX_CONCURRENT_RUNS
// the runs beyond the limit wait, say so, and complete, and never more agents run at once than the limit allows.
import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."writer"]
description = "Answers"
instruction = "Answer in one word."
`;

/** Polls the engine for the agents of these jobs that are running; returns the most seen at once. */
function watchAgents(engine: Docker, jobIds: Set<string>): { stop(): Promise<number> } {
  let most = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const running = await engine.listContainers({ filters: { label: ["perstack.role=agent"], status: ["running"] } });
      most = Math.max(most, running.filter((c) => jobIds.has(c.Labels["perstack.job"] ?? "")).length);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return most;
    },
  };
}

describe.skipIf(!docker)("many runs on one engine", () => {
  const suite = fakeModelSuite(docker!, "perstack-concurrent-");
  const stamp = Date.now().toString(36);

  it(
    "24 runs at once: all complete, nothing is left behind",
    async () => {
      await suite.fake.script([{ text: "Done." }]);
      const toml = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
      const jobIds = Array.from({ length: 24 }, (_, i) => `conc-${stamp}-${i}`);
      const started = Date.now();
      const results = await Promise.all(
        jobIds.map((jobId) => {
          const ws = suite.workspace(toml);
          return runCli(["run", "writer", "Say done", "--job-id", jobId], { cwd: ws, env: keyEnv(), timeoutMs: 540_000 }).then((result) => ({ ws, result }));
        }),
      );
      const wallMs = Date.now() - started;
      for (const { result } of results) {
        expect(result.exitCode, result.all).toBe(0);
        expect(result.stdout).toContain("Done.");
        expect(result.stderr).not.toMatch(/non-overlapping|HTTP code/);
      }
      for (const { ws } of results) expect(readJobs(ws)[0]?.job.status).toBe("completed");
      expect((await Promise.all(jobIds.map((jobId) => leftAfterTeardown(docker!, jobId)))).flat()).toEqual([]);
      console.log(`[concurrent-runs] 24 runs at once: ${(wallMs / 1000).toFixed(1)} s`);
    },
    600_000,
  );

  it(
    "PERSTACK_MAX_CONCURRENT_RUNS=2 with 4 runs: at most 2 agents at once, the others wait and say so, all complete",
    async () => {
      await suite.fake.script([{ text: "Done." }]);
      const toml = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
      const jobIds = Array.from({ length: 4 }, (_, i) => `slot-${stamp}-${i}`);
      const watcher = watchAgents(docker!, new Set(jobIds));
      const results = await Promise.all(
        jobIds.map((jobId) =>
          runCli(["run", "writer", "Say done", "--job-id", jobId], {
            cwd: suite.workspace(toml),
            env: { ...keyEnv(), PERSTACK_MAX_CONCURRENT_RUNS: "2" },
            timeoutMs: 300_000,
          }),
        ),
      );
      const most = await watcher.stop();
      for (const result of results) expect(result.exitCode, result.all).toBe(0);
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(2);
      const waited = results.filter((r) => /waiting for a free run slot \(\d+ running\)…/.test(r.stderr));
      expect(waited.length).toBeGreaterThanOrEqual(2);
      expect((await Promise.all(jobIds.map((jobId) => leftAfterTeardown(docker!, jobId)))).flat()).toEqual([]);
    },
    600_000,
  );

  it("a run exits before its sandbox is removed; the next run's sweep does not take that teardown for a crashed run", async () => {
    await suite.fake.script([{ text: "Done." }]);
    const toml = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const [first, second] = [`teardown-${stamp}-a`, `teardown-${stamp}-b`];
    const a = await runCli(["run", "writer", "Say done", "--job-id", first], { cwd: suite.workspace(toml), env: keyEnv() });
    expect(a.exitCode, a.all).toBe(0);
    // Straight after: the first run's teardown process is still at work, and this run's start sweeps the engine.
    const b = await runCli(["run", "writer", "Say done", "--job-id", second], { cwd: suite.workspace(toml), env: keyEnv() });
    expect(b.exitCode, b.all).toBe(0);
    expect(b.stderr).not.toContain("leftovers of crashed runs");
    expect(await leftAfterTeardown(docker!, first)).toEqual([]);
    expect(await leftAfterTeardown(docker!, second)).toEqual([]);
  });

  it("a bad PERSTACK_SUBNET_POOL or PERSTACK_MAX_CONCURRENT_RUNS is bad input: exit 2 before anything starts", async () => {
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, experts: EXPERTS }));
    const pool = await runCli(["run", "writer", "hi"], { cwd: ws, env: { ...keyEnv(), PERSTACK_SUBNET_POOL: "10.0.0.1/16" } });
    expect(pool.exitCode).toBe(2);
    expect(pool.stderr.trim()).toBe('perstack: PERSTACK_SUBNET_POOL: "10.0.0.1/16" has host bits set; did you mean 10.0.0.0/16?');
    const limit = await runCli(["run", "writer", "hi"], { cwd: ws, env: { ...keyEnv(), PERSTACK_MAX_CONCURRENT_RUNS: "none" } });
    expect(limit.exitCode).toBe(2);
    expect(limit.stderr).toContain("PERSTACK_MAX_CONCURRENT_RUNS");
    expect(readJobs(ws)).toEqual([]);
  });
});
