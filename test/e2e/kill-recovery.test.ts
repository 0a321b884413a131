// Issue 13: `kill -9` of perstack in the middle of a run loses nothing. The agent keeps running in its container;
// `perstack attach` follows it from where collection stopped, or (once the agent has exited) any command that reads
// the jobs (`perstack jobs`) collects the rest from the container's log. Either way every event the agent printed is
// recorded exactly once, the job ends with the agent's real outcome, and nothing is left on the engine.
//
// "Exactly once" is checked against a run of the same script that nobody killed: the same run events, in the same
// order, and no id twice.
import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { readJobs, runCli, type EventOnDisk, type JobOnDisk } from "../support/cli.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import type { FakeStep } from "../support/fake-model-container.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."worker"]
description = "Works a while"
instruction = "Do as asked."
`;

/** Events the agent's output made (the host's own: container status, proxy and gateway records, warnings, aside). */
const HOST_EVENTS = new Set(["dockerBuildProgress", "dockerContainerStatus", "proxyAccess", "providerUsage", "sandboxWarning"]);

function agentEvents(job: JobOnDisk): EventOnDisk[] {
  return job.allEvents.filter((e) => !HOST_EVENTS.has(e.type));
}

function expectEachOnce(events: EventOnDisk[]): void {
  const ids = events.map((e) => e.id as string);
  expect(new Set(ids).size, "an event recorded twice").toBe(ids.length);
}

/** Starts `perstack run --json` and kills it with SIGKILL once the agent has started its (long) tool call. */
async function runAndKill(cwd: string, args: string[]): Promise<{ jobId: string; output: string }> {
  const child = runCli(["run", ...args, "--json"], { cwd, env: keyEnv(), timeoutMs: 120_000 });
  let output = "";
  const jobId = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      for (const line of chunk.toString().split("\n")) if (line.includes('"callTools"')) resolve((JSON.parse(line) as { jobId: string }).jobId);
    });
    void child.then((result) => reject(new Error(`the run ended before it was killed: ${result.all}`)));
  });
  child.kill("SIGKILL");
  await child;
  return { jobId, output };
}

async function agentState(engine: Docker, jobId: string): Promise<string | undefined> {
  const [agent] = await engine.listContainers({ all: true, filters: { label: [`perstack.job=${jobId}`, "perstack.role=agent"] } });
  return agent?.State;
}

async function untilAgentExited(engine: Docker, jobId: string, boundMs = 60_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  while ((await agentState(engine, jobId)) === "running") {
    if (Date.now() > deadline) throw new Error(`the agent of job ${jobId} still runs after ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function onlyJob(cwd: string, jobId: string): JobOnDisk {
  const job = readJobs(cwd).find((j) => j.jobId === jobId);
  if (!job) throw new Error(`job ${jobId} is not in ${cwd}`);
  return job;
}

describe.skipIf(!docker)("kill -9 of perstack mid-run", () => {
  const engine = docker!;
  const suite = fakeModelSuite(engine, "perstack-kill-");

  /** Two steps around a tool call that outlasts the kill, then the answer. */
  const script = (runtime: "perstack" | "claude-code"): FakeStep[] => [
    { text: "Working.", toolUse: [runtime === "perstack" ? { name: "exec", input: { command: "sleep", args: ["4"], timeout: 60000 } } : { name: "Bash", input: { command: "sleep 4 && echo slept" } }] },
    { text: "Still working.", toolUse: [runtime === "perstack" ? { name: "exec", input: { command: "echo", args: ["second"], timeout: 60000 } } : { name: "Bash", input: { command: "echo second" } }] },
    { text: "All done." },
  ];

  async function reference(runtime: "perstack" | "claude-code"): Promise<EventOnDisk[]> {
    await suite.fake.script(script(runtime));
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const result = await runCli(["run", "worker", "work a while", "--runtime", runtime], { cwd: ws, env: keyEnv(), timeoutMs: 120_000 });
    expect(result.exitCode, result.all).toBe(0);
    return agentEvents(readJobs(ws)[0]!);
  }

  it.each(["perstack", "claude-code"] as const)(
    "%s: `perstack attach` follows the agent that outlived its perstack process, and records the run once",
    async (runtime) => {
      const expected = await reference(runtime);
      await suite.fake.script(script(runtime));
      const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
      const { jobId } = await runAndKill(ws, ["worker", "work a while", "--runtime", runtime]);
      // The agent did not die with the process, and the job is not over.
      expect(await agentState(engine, jobId)).toBe("running");
      expect(onlyJob(ws, jobId).job.status).toBe("running");

      const attached = await runCli(["attach", jobId], { cwd: ws, env: keyEnv(), timeoutMs: 120_000 });
      expect(attached.exitCode, attached.all).toBe(0);
      expect(attached.stdout).toContain("All done.");

      const job = onlyJob(ws, jobId);
      expect(job.job.status).toBe("completed");
      const events = agentEvents(job);
      expectEachOnce(job.allEvents);
      expect(events.map((e) => e.type)).toEqual(expected.map((e) => e.type));
      // The take-over is on the record.
      expect(job.allEvents.some((e) => e.type === "sandboxWarning" && e.code === "run-taken-over")).toBe(true);
      expect(await leftAfterTeardown(engine, jobId)).toEqual([]);
    },
    240_000,
  );

  it.each(["perstack", "claude-code"] as const)(
    "%s: after the agent finished on its own, `perstack jobs` completes the record from the container's log",
    async (runtime) => {
      const expected = await reference(runtime);
      await suite.fake.script(script(runtime));
      const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
      const { jobId } = await runAndKill(ws, ["worker", "work a while", "--runtime", runtime]);
      await untilAgentExited(engine, jobId);

      const listed = await runCli(["jobs", "--json"], { cwd: ws, timeoutMs: 60_000 });
      expect(listed.exitCode, listed.all).toBe(0);
      expect(listed.stderr).toMatch(new RegExp(`job ${jobId}: its perstack process \\(pid \\d+\\) stopped during the run; the rest of the run was collected and recorded: completed`));
      const entry = (JSON.parse(listed.stdout) as Array<{ id: string; status: string }>).find((j) => j.id === jobId);
      expect(entry?.status).toBe("completed");

      const job = onlyJob(ws, jobId);
      expectEachOnce(job.allEvents);
      expect(agentEvents(job).map((e) => e.type)).toEqual(expected.map((e) => e.type));
      expect(await leftAfterTeardown(engine, jobId)).toEqual([]);
      // Taken over once: the next command finds nothing to do.
      const again = await runCli(["jobs"], { cwd: ws, timeoutMs: 60_000 });
      expect(again.stderr).not.toContain(jobId);
    },
    240_000,
  );
});
