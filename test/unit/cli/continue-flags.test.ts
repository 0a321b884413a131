// `perstack run` continuation flags as users meet them: wrong combinations, missing jobs and mismatched experts
// fail in one line before Docker is touched. Runs the built CLI (npm run build first).
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { emptyUsage } from "../../../src/model/perstack.js";
import { makeWorkspace, runCli } from "../../support/cli.js";

const TOML = `
[provider]
providerName = "anthropic"
[experts."lead"]
instruction = "Lead."
delegates = ["helper"]
[experts."helper"]
instruction = "Help."
`;

const workspaces: string[] = [];
afterAll(() => {
  for (const dir of workspaces) rmSync(dir, { recursive: true, force: true });
});

interface JobSpec {
  id: string;
  runtime?: string;
  startedAt?: number;
  status?: string;
  checkpointStatus?: string;
  latest?: boolean;
}

function workspaceWith(jobs: JobSpec[]): string {
  const ws = makeWorkspace(TOML, "perstack-continue-");
  workspaces.push(ws);
  for (const spec of jobs) {
    const dir = join(ws, "perstack", "jobs", spec.id);
    mkdirSync(join(dir, "checkpoints"), { recursive: true });
    const cpId = `${spec.id}-cp`;
    writeFileSync(
      join(dir, "job.json"),
      JSON.stringify({
        id: spec.id,
        status: spec.status ?? "completed",
        coordinatorExpertKey: "lead",
        totalSteps: 2,
        usage: emptyUsage(),
        startedAt: spec.startedAt ?? 1,
        runtime: spec.runtime ?? "perstack",
        ...(spec.latest === false ? {} : { latestCheckpointId: cpId }),
      }),
    );
    writeFileSync(
      join(dir, "checkpoints", `${cpId}.json`),
      JSON.stringify({
        id: cpId,
        jobId: spec.id,
        runId: "r1",
        status: spec.checkpointStatus ?? "completed",
        stepNumber: 2,
        messages: [],
        expert: { key: "lead", name: "lead", version: "1.0.0" },
        usage: emptyUsage(),
        pendingToolCalls: spec.checkpointStatus === "stoppedByInteractiveTool" ? [{ id: "t1", skillName: "ask", toolName: "askUser", args: {} }] : [],
      }),
    );
  }
  return ws;
}

async function oneLineError(ws: string, args: string[], pattern: RegExp | string) {
  const result = await runCli(args, { cwd: ws, env: { ANTHROPIC_API_KEY: "k", DOCKER_HOST: "unix:///nonexistent.sock" }, timeoutMs: 30_000 });
  expect(result.exitCode, result.all).toBe(2);
  const lines = result.stderr.trim().split("\n");
  expect(lines, result.stderr).toHaveLength(1);
  if (typeof pattern === "string") expect(lines[0]).toBe(`perstack: ${pattern}`);
  else expect(lines[0]).toMatch(pattern);
}

describe("perstack run: continuation flags", () => {
  it("a new run still needs a query", async () => {
    await oneLineError(workspaceWith([]), ["run", "lead"], /^perstack: missing query: perstack run <expert> "<query>"/);
  });

  it("--resume-from needs --continue-job", async () => {
    await oneLineError(workspaceWith([]), ["run", "lead", "--resume-from", "cp1"], "--resume-from cp1 needs --continue-job <jobId>: the job the checkpoint belongs to");
  });

  it("-i needs a job", async () => {
    await oneLineError(workspaceWith([]), ["run", "lead", "-i", "yes"], /-i answers a job's pending interactive tool call; add --continue or --continue-job <jobId>/);
  });

  it("--continue-job on a missing job names the path and how to list jobs", async () => {
    const ws = workspaceWith([{ id: "j1" }]);
    await oneLineError(ws, ["run", "lead", "--continue-job", "nope", "more"], /^perstack: job nope not found: .*perstack\/jobs\/nope\/job\.json does not exist; list jobs with `perstack jobs`$/);
  });

  it("--continue with no jobs says how to start one", async () => {
    await oneLineError(workspaceWith([]), ["run", "lead", "--continue", "more"], /^perstack: --continue: no jobs in .*perstack\/jobs; start one with/);
  });

  it("--resume-from a checkpoint the job does not have names it", async () => {
    const ws = workspaceWith([{ id: "j1" }]);
    await oneLineError(ws, ["run", "lead", "--continue-job", "j1", "--resume-from", "ghost"], /^perstack: checkpoint ghost is not in job j1: no .*checkpoints\/ghost\.json/);
  });

  it("the expert must be the checkpoint's", async () => {
    const ws = workspaceWith([{ id: "j1" }]);
    await oneLineError(ws, ["run", "helper", "--continue-job", "j1", "more"], `job j1's checkpoint is expert "lead", not "helper"; run it with expert "lead"`);
  });

  it("a job of a CLI runtime cannot be continued, and --continue picks the latest job", async () => {
    const ws = workspaceWith([{ id: "old", startedAt: 1 }, { id: "new", startedAt: 2, runtime: "claude-code" }]);
    await oneLineError(ws, ["run", "lead", "--continue", "more"], "job new ran on runtime claude-code; only the built-in perstack runtime can continue a job");
  });

  it("--runtime must be the built-in one when continuing", async () => {
    const ws = workspaceWith([{ id: "j1" }]);
    await oneLineError(ws, ["run", "lead", "--continue-job", "j1", "--runtime", "gemini", "more"], /^perstack: --runtime gemini: only the built-in perstack runtime/);
  });

  it("a job waiting for input must be answered with -i, and -i needs a waiting job", async () => {
    const waiting = workspaceWith([{ id: "j1", status: "stoppedByInteractiveTool", checkpointStatus: "stoppedByInteractiveTool" }]);
    await oneLineError(waiting, ["run", "lead", "--continue-job", "j1", "more"], /answer it with `perstack run lead --continue-job j1 -i '<answer>'`$/);
    const done = workspaceWith([{ id: "j1" }]);
    await oneLineError(done, ["run", "lead", "--continue-job", "j1", "-i", "yes"], /^perstack: -i: checkpoint j1-cp of job j1 is completed, not waiting/);
  });

  it("a job without a recorded checkpoint says to pick one", async () => {
    const ws = workspaceWith([{ id: "j1", latest: false }]);
    await oneLineError(ws, ["run", "lead", "--continue-job", "j1", "more"], /job j1 recorded no checkpoint to continue from .*--resume-from <checkpointId>$/);
  });

  it("--dry-run of a continuation plans into the existing job", async () => {
    const ws = workspaceWith([{ id: "j1", status: "stoppedByInteractiveTool", checkpointStatus: "stoppedByInteractiveTool" }]);
    const result = await runCli(["run", "lead", "--continue-job", "j1", "-i", "blue", "--dry-run"], {
      cwd: ws,
      env: { ANTHROPIC_API_KEY: "k", DOCKER_HOST: "unix:///nonexistent.sock" },
      timeoutMs: 60_000,
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.jobId).toBe("j1");
    expect(plan.runtime.name).toBe("perstack");
    const inputFile = findFile(plan, ".perstack/engine-input.json");
    const input = JSON.parse(inputFile!.content);
    expect(input).toMatchObject({ jobId: "j1", stepsBefore: 2, start: { kind: "answer", answer: "blue", checkpoint: { id: "j1-cp" } } });
    expect(input.runId).not.toBe("r1");
  });
});

function findFile(value: unknown, path: string): { path: string; content: string } | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findFile(item, path);
      if (found) return found;
    }
  } else if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record.path === path && typeof record.content === "string") return record as { path: string; content: string };
    for (const item of Object.values(record)) {
      const found = findFile(item, path);
      if (found) return found;
    }
  }
  return undefined;
}
