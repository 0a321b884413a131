// `perstack run --runtime perstack` end to end: the built-in engine in its sandbox image, the real squid proxy,
// and one fake model container serving all three protocols. Issue 4's done-when items 1 (base skill, every
// provider, checkpoints, usage), 5 (maxSteps, retry, persistent error), 6 (resume from a checkpoint in a new
// container) and 7 (base skill confinement inside the container).
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, chownSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { type FakeStep } from "../support/fake-model-container.js";
import { fakeModelSuite, keyEnv, mainRequests, perstackToml, PROVIDERS, reportedUsage, toolResultsIn, type PerstackProvider } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."writer"]
description = "Writes files"
instruction = "Write what you are asked to."
`;

const WRITE_THEN_COMPLETE: FakeStep[] = [
  { toolUse: [{ name: "writeTextFile", input: { path: "hello.txt", text: "hello from perstack" } }] },
  { toolUse: [{ name: "attemptCompletion", input: {} }] },
  { text: "Wrote hello.txt." },
];

describe.skipIf(!docker)("perstack runtime: base skill, providers, stops, resume, confinement", () => {
  const suite = fakeModelSuite(docker!, "perstack-rt-");
  const workspace = (toml: string) => suite.workspace(toml);

  const cases: PerstackProvider[] = ["anthropic", "openai", "google"];
  it.each(cases)(
    "%s: writes a file with the base skill, completes, one checkpoint per step, job usage = what the fake reported",
    async (provider) => {
      const protocol = suite.fake.as(PROVIDERS[provider].fake);
      await protocol.script(WRITE_THEN_COMPLETE);
      const ws = workspace(perstackToml({ provider, baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
      const result = await runCli(["run", "writer", "Write hello to hello.txt"], { cwd: ws, env: keyEnv(provider), timeoutMs: 900_000 });
      expect(result.exitCode, result.all).toBe(0);
      expect(result.stdout).toContain("Wrote hello.txt.");
      expect(readFileSync(join(ws, "hello.txt"), "utf8")).toBe("hello from perstack");

      const [job] = readJobs(ws);
      expect(job!.job.status).toBe("completed");
      expect(job!.runIds).toHaveLength(1);
      // The run's start, its one tool step (lines of its checkpoints.jsonl), its end (the one file).
      expect(job!.checkpointFiles).toHaveLength(1);
      expect(job!.runs[0]!.loggedCheckpointIds).toHaveLength(2);
      expect(job!.checkpoints.map((c) => [c.status, c.stepNumber]).sort()).toEqual([["completed", 2], ["init", 1], ["proceeding", 1]]);
      const types = job!.events.map((e) => e.type).filter((t) => !t.startsWith("docker") && !t.startsWith("skill") && t !== "proxyAccess" && t !== "providerUsage");
      expect(types).toContain("startRun");
      expect(types.filter((t) => t === "callTools")).toHaveLength(2);
      expect(types.at(-1)).toBe("completeRun");

      const requests = await protocol.requests();
      expect(mainRequests(requests)).toHaveLength(3);
      const reported = reportedUsage(requests);
      expect(reported.inputTokens).toBeGreaterThan(0);
      expect(job!.job.usage.inputTokens).toBe(reported.inputTokens);
      expect(job!.job.usage.outputTokens).toBe(reported.outputTokens);
      expect(job!.job.usage.totalTokens).toBe(reported.inputTokens + reported.outputTokens);
      // The write's result went back to the model.
      expect(toolResultsIn(mainRequests(requests)[1]).map((r) => r.text).join("\n")).toContain("hello.txt");
    },
    900_000,
  );

  it("exported files run the engine by hand with docker-compose, the query from PERSTACK_QUERY", async () => {
    await suite.fake.script(WRITE_THEN_COMPLETE);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const out = join(ws, "perstack-export");
    const exported = await runCli(["export", "writer", "--out", out], { cwd: ws });
    expect(exported.exitCode, exported.all).toBe(0);
    const project = `perstackengineexport${Date.now()}`;
    const compose = (args: string[]) =>
      execa("docker-compose", ["-p", project, ...args], {
        cwd: out,
        reject: false,
        all: true,
        timeout: 600_000,
        env: { ...keyEnv(), PERSTACK_GATEWAY_TOKEN: "by-hand-token-0123456789abcdef", PERSTACK_QUERY: "Write hello to hello.txt, by hand" },
      });
    try {
      const up = await compose(["up", "--build", "--abort-on-container-exit", "--exit-code-from", "agent"]);
      expect(up.exitCode, up.all).toBe(0);
      expect(up.all).toContain('"type":"completeRun"');
      expect(readFileSync(join(ws, "hello.txt"), "utf8")).toBe("hello from perstack");
      const first = mainRequests(await suite.fake.requests())[0]!;
      expect(JSON.stringify(first.body)).toContain("Write hello to hello.txt, by hand");
    } finally {
      await compose(["down", "-v", "--remove-orphans"]);
    }
  }, 900_000);

  it("stops at maxSteps with stoppedByMaxSteps", async () => {
    const health: FakeStep = { toolUse: [{ name: "healthCheck", input: {} }] };
    await suite.fake.script([health, health, health, { text: "never" }]);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0\nmaxSteps = 2", experts: EXPERTS }));
    const result = await runCli(["run", "writer", "Loop forever"], { cwd: ws, env: keyEnv() });
    expect(result.exitCode, result.all).not.toBe(0);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByMaxSteps");
    expect(job!.events.some((e) => e.type === "stopRunByExceededMaxSteps")).toBe(true);
    expect(mainRequests(await suite.fake.requests())).toHaveLength(2);
  }, 300_000);

  it("retries a 429 (a retry event) and completes", async () => {
    await suite.fake.script([{ error: { status: 429, type: "rate_limit_error", message: "slow down" }, times: 1 }, { text: "Done after a retry." }]);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 2", experts: EXPERTS }));
    const result = await runCli(["run", "writer", "Answer"], { cwd: ws, env: keyEnv() });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain("Done after a retry.");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    const retries = job!.events.filter((e) => e.type === "retry");
    expect(retries).toHaveLength(1);
    expect(String(retries[0]!.reason)).toMatch(/429/);
  }, 300_000);

  it("stops with stoppedByError on a persistent 500 after maxRetries = 1", async () => {
    await suite.fake.script([{ error: { status: 500, type: "api_error", message: "persistent upstream failure" } }, { text: "never" }]);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 1", experts: EXPERTS }));
    const result = await runCli(["run", "writer", "Answer"], { cwd: ws, env: keyEnv() });
    expect(result.exitCode).toBe(1);
    expect(result.all).toContain("persistent upstream failure");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    expect(job!.events.filter((e) => e.type === "retry")).toHaveLength(1);
    const stop = job!.events.find((e) => e.type === "stopRunByError")!;
    expect(stop.error).toMatchObject({ statusCode: 500 });
    expect(mainRequests(await suite.fake.requests())).toHaveLength(2);
  }, 300_000);

  it("--continue-job --resume-from a step-1 checkpoint reaches completed in a new container and keeps the earlier checkpoints", async () => {
    await suite.fake.script(WRITE_THEN_COMPLETE);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const first = await runCli(["run", "writer", "Write hello to hello.txt"], { cwd: ws, env: keyEnv() });
    expect(first.exitCode, first.all).toBe(0);
    const [before] = readJobs(ws);
    const step1 = before!.checkpoints.find((c) => c.stepNumber === 1 && c.status !== "init")!;
    expect(step1.status).toBe("proceeding");
    // Everything the first run wrote for its checkpoints: its files, and its runs' logs.
    const jobDir = join(ws, "perstack", "jobs", before!.jobId);
    const written = [...before!.checkpointFiles.map((f) => join("checkpoints", f)), ...before!.runIds.flatMap((r) => ["checkpoints.jsonl", "messages.jsonl"].map((f) => join("runs", r, f)))];
    const snapshot = new Map(written.map((f) => [f, readFileSync(join(jobDir, f), "utf8")]));

    // The resumed conversation holds one assistant turn: the fake answers it from turn 1 on.
    await suite.fake.script([{ text: "unused" }, { toolUse: [{ name: "attemptCompletion", input: {} }] }, { text: "Resumed and done." }]);
    const resumed = await runCli(["run", "writer", "--continue-job", before!.jobId, "--resume-from", step1.id], { cwd: ws, env: keyEnv() });
    expect(resumed.exitCode, resumed.all).toBe(0);
    expect(resumed.stdout).toContain("Resumed and done.");

    const jobs = readJobs(ws);
    expect(jobs).toHaveLength(1);
    const [after] = jobs;
    expect(after!.jobId).toBe(before!.jobId);
    expect(after!.job.status).toBe("completed");
    expect(after!.checkpoints.length).toBeGreaterThan(before!.checkpoints.length);
    for (const [file, content] of snapshot) expect(readFileSync(join(jobDir, file), "utf8"), file).toBe(content);
    const main = mainRequests(await suite.fake.requests());
    expect(main[0]!.turn).toBe(1);
    expect(toolResultsIn(main[0]).map((r) => r.text).join("\n")).toContain("hello.txt");
  }, 300_000);

  it("--continue carries the most recent job on with a new query: same job, a new run, steps and usage added up", async () => {
    await suite.fake.script([{ text: "First answer." }]);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const first = await runCli(["run", "writer", "Say something"], { cwd: ws, env: keyEnv() });
    expect(first.exitCode, first.all).toBe(0);
    const [before] = readJobs(ws);
    const firstUsage = before!.job.usage.totalTokens;

    // The continued conversation holds one assistant turn: the fake answers it from turn 1.
    await suite.fake.script([{ text: "unused" }, { text: "Second answer, with the first in mind." }]);
    const next = await runCli(["run", "writer", "--continue", "Now say more"], { cwd: ws, env: keyEnv() });
    expect(next.exitCode, next.all).toBe(0);
    expect(next.stdout).toContain("Second answer, with the first in mind.");
    const [after] = readJobs(ws);
    expect(after!.jobId).toBe(before!.jobId);
    expect(after!.runIds).toHaveLength(2);
    expect(after!.job).toMatchObject({ status: "completed", totalSteps: 2 });
    const [request] = mainRequests(await suite.fake.requests());
    expect(request!.turn).toBe(1);
    const body = JSON.stringify(request!.body);
    expect(body).toContain("Say something");
    expect(body).toContain("First answer.");
    expect(body).toContain("Now say more");
    expect(after!.job.usage.totalTokens).toBe(firstUsage + reportedUsage(await suite.fake.requests()).inputTokens + reportedUsage(await suite.fake.requests()).outputTokens);
  }, 300_000);

  it("a 40-step run records linearly: events and raw output cost the same per step late and early, `perstack log --json` expands every event", async () => {
    // Each step writes or reads a file of 1 KB, so the conversation grows by about that much per step.
    const text = (i: number) => `note ${i}: ${"lorem ipsum ".repeat(85)}`;
    const steps: FakeStep[] = [];
    for (let i = 0; i < 20; i++) {
      steps.push({ toolUse: [{ name: "writeTextFile", input: { path: `notes-${i}.txt`, text: text(i) } }] });
      steps.push({ toolUse: [{ name: "readTextFile", input: { path: `notes-${i}.txt` } }] });
    }
    steps.push({ text: "Forty steps done." });
    await suite.fake.script(steps);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const result = await runCli(["run", "writer", "Write and read forty notes"], { cwd: ws, env: keyEnv() });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain("Forty steps done.");
    const [job] = readJobs(ws);
    expect(job!.job).toMatchObject({ status: "completed", totalSteps: 41 });

    // Bytes per step, early (steps 1-20) and late (21-40), of what the collector wrote and what the engine printed.
    const runDir = join(ws, "perstack", "jobs", job!.jobId, "runs", job!.runIds[0]!);
    const perStep = (file: string) => {
      const bytes = new Map<number, number>();
      for (const line of readFileSync(join(runDir, file), "utf8").split("\n")) {
        if (!line.startsWith("{")) continue;
        const step = (JSON.parse(line) as { stepNumber?: number }).stepNumber;
        if (step !== undefined) bytes.set(step, (bytes.get(step) ?? 0) + line.length + 1);
      }
      const sum = (from: number, to: number) => [...bytes].filter(([s]) => s >= from && s <= to).reduce((n, [, b]) => n + b, 0);
      return { early: sum(1, 20), late: sum(21, 40), total: sum(1, 41) };
    };
    const events = perStep("events.jsonl");
    const raw = perStep("raw.log");
    // Linear: a late step costs what an early one does (a repeated history would make late steps ~3x dearer).
    expect(events.late / events.early).toBeLessThan(1.3);
    expect(raw.late / raw.early).toBeLessThan(1.3);
    expect(events.total).toBeLessThan(2 * raw.total);
    // Checkpoint files stay whole: the last holds the whole conversation.
    const final = job!.checkpoints.find((c) => c.status === "completed")!;
    expect(final.messages).toHaveLength(2 + 40 * 2 + 1);

    const log = await runCli(["log", "--job", job!.jobId, "--json", "--take", "0"], { cwd: ws });
    expect(log.exitCode, log.all).toBe(0);
    expect(log.stderr).toBe("");
    expect(log.stdout).not.toContain("messagesRef");
    const shown = JSON.parse(log.stdout) as { events: Array<{ type: string; messages?: unknown[]; checkpoint?: { messages?: unknown[] }; nextCheckpoint?: { messages?: unknown[] } }> };
    const generations = shown.events.filter((e) => e.type === "startGeneration").map((e) => e.messages?.length);
    expect(generations).toEqual(Array.from({ length: 41 }, (_, i) => 2 + 2 * i));
    for (const e of shown.events.filter((e) => e.type === "continueToNextStep")) expect(e.nextCheckpoint?.messages).toEqual(e.checkpoint?.messages);
    const messages = await runCli(["log", "--job", job!.jobId, "--messages"], { cwd: ws });
    expect(messages.stdout).toContain(`Messages (${final.messages.length}):`);
  }, 600_000);

  it("confines the base skill to the workspace inside the container: .., absolute and symlinked paths are refused", async () => {
    const outside = mkdtempSync(join(tmpdir(), "perstack-outside-"));
    suite.removeAfterwards(outside);
    const ws = workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    if (process.getuid?.() === 0) chownSync(outside, 1000, 1000);
    chmodSync(outside, 0o777);
    // Targets as the container sees them: /etc, its writable /tmp, the workspace's parent; and a host directory
    // outside the workspace (not mounted, so dangling inside: it must not appear on the host either).
    symlinkSync("/etc", join(ws, "leak"));
    symlinkSync("/tmp", join(ws, "tmp-link"));
    symlinkSync("..", join(ws, "up"));
    symlinkSync(outside, join(ws, "out"));
    const call = (name: string, input: Record<string, unknown>): FakeStep => ({ toolUse: [{ name, input }] });
    await suite.fake.script([
      call("readTextFile", { path: "../../etc/passwd" }),
      call("readTextFile", { path: "/etc/passwd" }),
      call("readTextFile", { path: "leak/passwd" }),
      call("writeTextFile", { path: "../outside.txt", text: "escaped" }),
      call("writeTextFile", { path: "out/escaped.txt", text: "escaped" }),
      call("writeTextFile", { path: "leak/escaped.txt", text: "escaped" }),
      call("writeTextFile", { path: "tmp-link/escaped.txt", text: "escaped" }),
      call("writeTextFile", { path: "up/escaped.txt", text: "escaped" }),
      call("readTextFile", { path: "tmp-link/escaped.txt" }),
      { text: "Probes finished." },
    ]);
    const result = await runCli(["run", "writer", "Probe the workspace"], { cwd: ws, env: keyEnv() });
    expect(result.exitCode, result.all).toBe(0);
    const main = mainRequests(await suite.fake.requests());
    const results = toolResultsIn(main.at(-1));
    expect(results).toHaveLength(9);
    for (const r of results) {
      expect(r.isError, r.text).toBe(true);
      expect(r.text).toMatch(/is outside the workspace/);
      expect(r.text).not.toMatch(/root:x:0:0/);
    }
    // Nothing was written outside the workspace on the host.
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(join(ws, "..", "outside.txt"))).toBe(false);
    expect(existsSync(join(ws, "..", "escaped.txt"))).toBe(false);
    expect(lstatSync(join(ws, "leak")).isSymbolicLink()).toBe(true);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
  }, 300_000);
});
