// Issue 15, the remote client: `perstack run --server` against a real `perstack serve` (a tenant, the fake model
// allowed as its private upstream) behaves as the same run made here: the same events (--json), the same exit code,
// the same workspace changes on disk. A job that stops for an interactive answer exits 3 and is answered with
// --continue-job -i on the server, its changes applied too; `jobs --server` and `log --server` show the jobs. Bad
// flags and an unreachable server are one line each. Nothing is left on the engine.
import { chmodSync, chownSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST_ONLY_EVENT_TYPES } from "../../src/model/perstack.js";
import { runCli } from "../support/cli.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import { baseAndAskSkills, fakeModelSuite, jsonLines, keyEnv, perstackToml } from "../support/perstack-e2e.js";
import { addTenant, startServer, type TestServer } from "../support/perstack-server.js";

const docker = await requireDocker();

const EXPERTS = `[experts."worker"]
description = "Works in the workspace"
instruction = "Do as asked."

[experts."asker"]
description = "Asks the user"
instruction = "Ask the user for a color, then write it down."
${baseAndAskSkills("asker")}`;

/** Every file under `dir` but perstack/ (the local jobs and kept versions), with its content. */
function filesOf(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, prefix)).sort()) {
    const path = prefix === "" ? name : `${prefix}/${name}`;
    if (path === "perstack") continue;
    const stat = statSync(join(dir, path));
    if (stat.isDirectory()) Object.assign(out, filesOf(dir, path));
    else out[path] = readFileSync(join(dir, path), "utf8");
  }
  return out;
}

/**
 * Event types whose number depends on the engine and the network, not on the run: image builds happen once per
 * image, and the proxy logs connections (which keep-alive may or may not reuse).
 */
const ENGINE_STATE = new Set(["dockerBuildProgress", "proxyAccess"]);

describe.skipIf(!docker)("perstack run --server", () => {
  const suite = fakeModelSuite(docker!, "perstack-remote-");
  const dirs = { data: mkdtempSync(join(tmpdir(), "perstack-remote-data-")), cwd: mkdtempSync(join(tmpdir(), "perstack-remote-cwd-")) };
  let server: TestServer;
  let token: string;
  const jobIds: string[] = [];

  /** The CLI with the tenant's token in the environment (never on the command line), and no provider key. */
  const remote = (args: string[], cwd: string, timeoutMs = 300_000) => runCli([...args, "--server", server.url], { cwd, env: { PERSTACK_TOKEN: token }, timeoutMs });

  beforeAll(async () => {
    token = await addTenant(dirs, "remote");
    server = await startServer(dirs, { allowUpstream: new URL(suite.fake.sandboxUrl).host });
  }, 120_000);

  afterAll(async () => {
    if (server?.log()) console.log(`perstack serve said:\n${server.log()}`);
    await server?.stop();
    for (const jobId of jobIds) expect(await leftAfterTeardown(docker!, jobId)).toEqual([]);
    rmSync(dirs.data, { recursive: true, force: true });
    rmSync(dirs.cwd, { recursive: true, force: true });
  }, 60_000);

  it("runs as the same run made here: the same --json events, exit code and workspace changes", async () => {
    const command = "echo changed by the agent > readme.txt && echo made by the agent > made.txt && rm gone.txt";
    await suite.fake.script([
      { forQuery: "edit the files", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", command], timeout: 60000 } }] },
      { forQuery: "edit the files", text: "edited" },
    ]);
    const here = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    for (const [name, content] of Object.entries({ "readme.txt": "original\n", "gone.txt": "to delete\n", "secret.txt": "mode 0600\n", ".env": "LOCAL_ONLY=never-uploaded\n" })) {
      writeFileSync(join(here, name), content);
      // The local run binds the workspace: its agent (uid 1000 when the tests run as root) must own what it edits.
      if (process.getuid?.() === 0) chownSync(join(here, name), 1000, 1000);
    }
    chmodSync(join(here, "secret.txt"), 0o600);
    const there = mkdtempSync(join(tmpdir(), "perstack-remote-ws-"));
    suite.removeAfterwards(there);
    cpSync(here, there, { recursive: true, preserveTimestamps: true });
    chmodSync(join(there, "secret.txt"), 0o600);

    const local = await runCli(["run", "worker", "edit the files", "--json"], { cwd: here, env: keyEnv() });
    expect(local.exitCode, local.all).toBe(0);
    const started = Date.now();
    const onServer = await remote(["run", "worker", "edit the files", "--json"], there);
    const took = Date.now() - started;
    expect(onServer.exitCode, onServer.all).toBe(local.exitCode);

    const localEvents = jsonLines(local.stdout);
    const remoteEvents = jsonLines(onServer.stdout);
    const jobId = remoteEvents[0]!.jobId as string;
    jobIds.push(jobId, localEvents[0]!.jobId as string);
    // The run's own events in the same order; the host's (container status, proxy, gateway) interleave with them as
    // timing has it, so they are compared as a multiset.
    const runTypes = (events: typeof localEvents) => events.map((e) => e.type).filter((type) => !HOST_ONLY_EVENT_TYPES.has(type));
    const allTypes = (events: typeof localEvents) => events.map((e) => e.type).filter((type) => !ENGINE_STATE.has(type)).sort();
    expect(runTypes(remoteEvents)).toEqual(runTypes(localEvents));
    expect(allTypes(remoteEvents)).toEqual(allTypes(localEvents));
    expect(remoteEvents.some((e) => e.type === "proxyAccess")).toBe(localEvents.some((e) => e.type === "proxyAccess"));
    expect(runTypes(remoteEvents)).toContain("completeRun");
    // Perstack's shape, as a local run prints it: checkpoints whole, with their messages.
    type Completion = { checkpoint: { messages: unknown[] }; text: string };
    const complete = remoteEvents.find((e) => e.type === "completeRun") as unknown as Completion;
    expect(complete.text).toBe("edited");
    expect(complete.checkpoint.messages.length).toBe((localEvents.find((e) => e.type === "completeRun") as unknown as Completion).checkpoint.messages.length);
    expect(remoteEvents.every((e) => e.jobId === jobId)).toBe(true);

    // The same changes on disk; what was never uploaded (the env file) and what the agent did not touch, as before.
    expect(filesOf(there)).toEqual(filesOf(here));
    expect(filesOf(there)).toMatchObject({ "readme.txt": "changed by the agent\n", "made.txt": "made by the agent\n", ".env": "LOCAL_ONLY=never-uploaded\n" });
    expect(filesOf(there)["gone.txt"]).toBeUndefined();
    expect(statSync(join(there, "secret.txt")).mode & 0o777).toBe(0o600);
    expect(onServer.stderr).not.toContain(token);
    console.log(`remote run took ${took} ms`);

    // The live view: the answer on stdout, the job and what was copied back on stderr.
    await suite.fake.script([{ forQuery: "just answer", text: "the answer" }]);
    const live = await remote(["run", "worker", "just answer"], there);
    expect(live.exitCode, live.all).toBe(0);
    expect(live.stdout).toContain("✔ completed in 1 step(s)");
    expect(live.stdout).toContain("the answer");
    expect(live.stderr).toMatch(/job \S+ submitted on http:\/\/127\.0\.0\.1:\d+: queued/);
    expect(live.stderr).toMatch(/workspace: copied back 0 created, 0 modified, 0 deleted/);
    expect(live.stderr).toMatch(/job (\S+): completed · http:\/\/127\.0\.0\.1:\d+/);
    jobIds.push(/job (\S+): completed/.exec(live.stderr)![1]!);
  }, 900_000);

  it("a job waiting for input exits 3 with the command that answers it; --continue-job -i answers it there and applies its changes", async () => {
    await suite.fake.script([
      { forQuery: "pick a color", toolUse: [{ name: "askColor", input: { question: "Which color do you want?" } }] },
      { forQuery: "pick a color", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", "echo blue > color.txt"], timeout: 60000 } }] },
      { forQuery: "pick a color", text: "You chose blue." },
    ]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const first = await remote(["run", "asker", "pick a color"], ws);
    expect(first.exitCode, first.all).toBe(3);
    expect(first.stderr).toContain("Which color do you want?");
    const answer = /answer with: (perstack run asker --continue-job (\S+) -i '<answer>' --server (\S+))/.exec(first.stderr);
    expect(answer, first.stderr).not.toBeNull();
    const jobId = answer![2]!;
    jobIds.push(jobId);
    expect(answer![3]).toBe(server.url);

    const jobs = await remote(["jobs"], ws, 60_000);
    expect(jobs.exitCode, jobs.all).toBe(0);
    expect(jobs.stdout).toMatch(new RegExp(`${jobId}\\s+asker\\s+perstack\\s+stoppedByInteractiveTool .*answer: perstack run asker --continue-job ${jobId} -i '<answer>' --server ${server.url.replace(/\./g, "\\.")}`));

    // Changed here meanwhile: must survive the continuation.
    writeFileSync(join(ws, "mine.txt"), "made here while it waited\n");
    const second = await remote(["run", "asker", "--continue-job", jobId, "-i", "blue", "--json"], ws);
    expect(second.exitCode, second.all).toBe(0);
    expect(second.stderr, second.stderr).toBe("");
    const events = jsonLines(second.stdout);
    // Only this invocation's events: one startRun, the answer, the completion.
    expect(events.filter((e) => e.type === "startRun")).toHaveLength(1);
    expect(events.find((e) => e.type === "completeRun")).toMatchObject({ text: "You chose blue." });
    expect(readFileSync(join(ws, "color.txt"), "utf8")).toBe("blue\n");
    expect(readFileSync(join(ws, "mine.txt"), "utf8")).toBe("made here while it waited\n");

    const listed = await remote(["jobs", "--json"], ws, 60_000);
    expect(listed.exitCode, listed.all).toBe(0);
    const entry = (JSON.parse(listed.stdout) as Array<{ id: string; status: string; coordinatorExpertKey: string }>).find((e) => e.id === jobId);
    expect(entry).toMatchObject({ status: "completed", coordinatorExpertKey: "asker" });

    const summary = await remote(["log", "--job", jobId, "--summary"], ws, 60_000);
    expect(summary.exitCode, summary.all).toBe(0);
    expect(summary.stdout).toMatch(/status\s+completed/);
    expect(summary.stdout).toMatch(/tool calls\s+2: askColor 1 · exec 1|tool calls\s+2: exec 1 · askColor 1/);
    const log = await remote(["log", "--job", jobId, "--json", "--take", "0"], ws, 60_000);
    expect(log.exitCode, log.all).toBe(0);
    const logged = JSON.parse(log.stdout) as { job: { id: string }; events: Array<{ type: string; checkpoint?: { messages?: unknown[] } }> };
    expect(logged.job.id).toBe(jobId);
    expect(logged.events.filter((e) => e.type === "startRun")).toHaveLength(2);
    // --json has the messages in place, read back from the server's checkpoints.
    expect(logged.events.find((e) => e.type === "completeRun")?.checkpoint?.messages?.length).toBeGreaterThan(0);
    const latest = await remote(["log", "--tools"], ws, 60_000);
    expect(latest.exitCode, latest.all).toBe(0);
    expect(latest.stdout).toContain("askColor");
  }, 900_000);

  it("Ctrl-C cancels the job on the server and exits 130 as a local interrupted run does; nothing is left", async () => {
    await suite.fake.script([
      { forQuery: "wait a minute", toolUse: [{ name: "exec", input: { command: "sleep", args: ["60"], timeout: 120000 } }] },
      { forQuery: "wait a minute", text: "never" },
    ]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const child = runCli(["run", "worker", "wait a minute", "--json", "--server", server.url], { cwd: ws, env: { PERSTACK_TOKEN: token }, timeoutMs: 180_000 });
    const jobId = await new Promise<string>((resolve) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) if (line.includes('"callTools"')) resolve((JSON.parse(line) as { jobId: string }).jobId);
      });
    });
    jobIds.push(jobId);
    const interruptedAt = Date.now();
    child.kill("SIGINT");
    const result = await child;
    expect(result.exitCode, result.all).toBe(130);
    expect(Date.now() - interruptedAt).toBeLessThan(60_000);
    expect(result.stderr).toMatch(new RegExp(`SIGINT: cancelling job ${jobId} on `));
    const stop = jsonLines(result.stdout).find((e) => e.type === "stopRunByError") as { error?: { name: string } } | undefined;
    expect(stop?.error?.name, result.stdout).toBe("Interrupted");
    const view = await (await fetch(`${server.url}/v1/runs/${jobId}`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(view).toMatchObject({ status: "stoppedByError" });
    expect(await leftAfterTeardown(docker!, jobId)).toEqual([]);
  }, 300_000);

  it("compare --server: the server's comparison, shown and kept as a local one", async () => {
    await suite.fake.script([{ forQuery: "compare me", text: "compared" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const result = await remote(["compare", "worker", "compare me", "--runtimes", "perstack"], ws);
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toMatch(/perstack #1: (queued|started) \(job (\S+)\)/);
    expect(result.stderr).toMatch(/perstack #1: completed/);
    expect(result.stdout).toMatch(/^runtime\s+status/);
    expect(result.stdout).toMatch(/perstack\s+completed/);
    const saved = /report: (\S+report\.html)/.exec(result.stdout);
    expect(saved, result.stdout).not.toBeNull();
    expect(readFileSync(saved![1]!, "utf8")).toContain("<html");
    const comparison = JSON.parse(readFileSync(saved![1]!.replace(/report\.html$/, "comparison.json"), "utf8")) as { runs: Array<{ jobId: string; status: string }> };
    expect(comparison.runs).toHaveLength(1);
    expect(comparison.runs[0]!.status).toBe("completed");
    jobIds.push(comparison.runs[0]!.jobId);
  }, 300_000);

  it("bad flags and an unreachable server are one line each, nothing started: exit 2 and 1", async () => {
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, experts: EXPERTS }));
    for (const [args, message] of [
      [["run", "worker", "q", "--env", "FOO"], /^perstack: --env does not go with --server: /],
      [["run", "worker", "q", "--max-steps", "3"], /^perstack: --max-steps does not go with --server: set it in perstack\.toml/],
      [["run", "worker", "--continue-job", "nosuchjob0", "-i", "yes"], /^perstack: job nosuchjob0 not found on http:\/\/127\.0\.0\.1:\d+/],
      [["compare", "worker", "q", "--runtimes", "perstack", "--repeat", "2"], /^perstack: --repeat does not go with --server/],
    ] as const) {
      const result = await remote([...args], ws, 60_000);
      expect(result.exitCode, result.all).toBe(2);
      expect(result.stderr.trim().split("\n"), result.stderr).toHaveLength(1);
      expect(result.stderr.trim()).toMatch(message);
    }
    const http = await runCli(["jobs", "--server", "http://perstack.example.com"], { cwd: ws, env: { PERSTACK_TOKEN: token }, timeoutMs: 60_000 });
    expect(http.exitCode).toBe(2);
    expect(http.stderr.trim()).toMatch(/plain http would send your token/);
    const wrong = await runCli(["jobs", "--server", server.url], { cwd: ws, env: { PERSTACK_TOKEN: "pst_remote_wrong" }, timeoutMs: 60_000 });
    expect(wrong.exitCode).toBe(2);
    expect(wrong.stderr.trim()).toMatch(/refused the token/);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const down = await runCli(["run", "worker", "q", "--server", `http://127.0.0.1:${port}`], { cwd: ws, env: { PERSTACK_TOKEN: token }, timeoutMs: 60_000 });
    expect(down.exitCode, down.all).toBe(1);
    expect(down.stderr.trim()).toBe(`perstack: cannot reach the server at http://127.0.0.1:${port}: connection refused (ECONNREFUSED); check --server (or PERSTACK_SERVER) and that perstack serve runs there`);
  }, 120_000);
});
