// Jobs written to a temporary perstack/ directory the way the collector lays them out, for the history tests.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emptyUsage, type Job, type Usage } from "../../../src/model/perstack.js";
import type { CommandIo } from "../../../src/cli/command-io.js";

export type FixtureEvent = { type: string; runId: string; timestamp: number; [key: string]: unknown };

export function usage(input: number, output: number): Usage {
  return { ...emptyUsage(), inputTokens: input, outputTokens: output, totalTokens: input + output };
}

export function checkpoint(id: string, runId: string, expert: string, status: string, stepNumber: number, over: Record<string, unknown> = {}) {
  return {
    id,
    jobId: "job1",
    runId,
    status,
    stepNumber,
    messages: [
      { type: "instructionMessage", id: `${id}-m0`, contents: [{ type: "textPart", text: `You are ${expert}.` }] },
      { type: "userMessage", id: `${id}-m1`, contents: [{ type: "textPart", text: "Write the notes" }] },
    ],
    expert: { key: expert, name: expert, version: "1.0.0" },
    usage: emptyUsage(),
    ...over,
  };
}

export function perstackDir(): string {
  return join(mkdtempSync(join(tmpdir(), "perstack-history-")), "perstack");
}

export interface JobFixture {
  job: Partial<Job> & { id: string };
  /** Per run id: the lines of its events.jsonl (objects are JSON-encoded, strings written as they are). */
  runs: Record<string, Array<FixtureEvent | string>>;
  checkpoints?: Array<{ id: string; [key: string]: unknown }>;
  settings?: Record<string, unknown>;
}

export function writeJob(dir: string, fixture: JobFixture): string {
  const jobDir = join(dir, "jobs", fixture.job.id);
  mkdirSync(join(jobDir, "checkpoints"), { recursive: true });
  const job: Job = {
    status: "completed",
    coordinatorExpertKey: "lead",
    totalSteps: 3,
    usage: usage(100, 20),
    startedAt: 1_000,
    finishedAt: 43_000,
    runtime: "perstack",
    ...fixture.job,
  };
  writeFileSync(join(jobDir, "job.json"), JSON.stringify(job));
  for (const [runId, lines] of Object.entries(fixture.runs)) {
    mkdirSync(join(jobDir, "runs", runId), { recursive: true });
    writeFileSync(join(jobDir, "runs", runId, "events.jsonl"), lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
    const setting = fixture.settings?.[runId];
    if (setting !== undefined) writeFileSync(join(jobDir, "runs", runId, "run-setting.json"), JSON.stringify(setting));
  }
  for (const cp of fixture.checkpoints ?? []) writeFileSync(join(jobDir, "checkpoints", `${cp.id}.json`), JSON.stringify(cp));
  return jobDir;
}

let counter = 0;
/** A run event of `runId` at `timestamp`. */
export function ev(type: string, runId: string, timestamp: number, fields: Record<string, unknown> = {}): FixtureEvent {
  counter += 1;
  return { type, id: `e${counter}`, jobId: "job1", runId, timestamp, ...fields };
}

const call = (toolName: string, args: unknown, extra: Record<string, unknown> = {}) => ({ id: `t-${toolName}`, skillName: "@perstack/base", toolName, args, ...extra });
const result = (toolName: string, text: string, isError = false) => ({ id: `t-${toolName}`, skillName: "@perstack/base", toolName, result: [{ type: "textPart", text }], ...(isError ? { isError } : {}) });

/**
 * A job of two runs: lead (r1) writes notes after a retry, is blocked once by the proxy, delegates to helper (r2),
 * whose Bash call fails, then completes. The runs' files interleave in time; r1's has two lines that are not events.
 */
export function multiRunJob(): JobFixture {
  const lead = { expertKey: "lead" };
  const helper = { expertKey: "helper" };
  const cp1 = checkpoint("cp1", "r1", "lead", "proceeding", 1, { usage: usage(10, 5) });
  const cp2 = checkpoint("cp2", "r1", "lead", "stoppedByDelegate", 2, {
    usage: usage(20, 8),
    delegateTo: [{ expert: { key: "helper", name: "helper", version: "1" }, toolCallId: "t-helper", toolName: "helper", runId: "r2", query: "summarize" }],
  });
  const cp3 = checkpoint("cp3", "r2", "helper", "completed", 1, { usage: usage(30, 4) });
  const cp4 = checkpoint("cp4", "r1", "lead", "completed", 3, { usage: usage(70, 16) });
  return {
    job: { id: "job1", latestCheckpointId: "cp4" },
    settings: { r1: { runtime: { name: "perstack" } }, r2: { runtime: { name: "perstack" } } },
    checkpoints: [cp1, cp2, cp3, cp4],
    runs: {
      r1: [
        ev("initializeRuntime", "r1", 1000, { runtime: "perstack" }),
        ev("startRun", "r1", 1001, { ...lead, stepNumber: 1, initialCheckpoint: checkpoint("cp0", "r1", "lead", "init", 0), inputMessages: [{ type: "userMessage", id: "u", contents: [{ type: "textPart", text: "Write the notes" }] }] }),
        ev("startGeneration", "r1", 1002, { ...lead, stepNumber: 1, messages: [] }),
        ev("retry", "r1", 1003, { ...lead, stepNumber: 1, reason: "429: slow down" }),
        "{ this is not json",
        ev("callTools", "r1", 1004, { ...lead, stepNumber: 1, toolCalls: [call("writeTextFile", { path: "notes.txt", text: "n" })], usage: usage(10, 5) }),
        ev("proxyAccess", "r1", 1005, { action: "blocked", domain: "evil.example.com", port: 443, reason: "not-allowlisted" }),
        JSON.stringify({ type: "callTools", note: "no envelope" }),
        ev("resolveToolResults", "r1", 1006, { ...lead, stepNumber: 1, toolResults: [result("writeTextFile", "wrote notes.txt")] }),
        ev("continueToNextStep", "r1", 1007, { ...lead, stepNumber: 1, checkpoint: cp1, nextCheckpoint: cp1 }),
        ev("startGeneration", "r1", 1008, { ...lead, stepNumber: 2, messages: [] }),
        ev("callDelegate", "r1", 1009, { ...lead, stepNumber: 2, toolCalls: [call("helper", { query: "summarize" })], usage: usage(10, 3) }),
        ev("stopRunByDelegate", "r1", 1010, { ...lead, stepNumber: 2, checkpoint: cp2 }),
        ev("startGeneration", "r1", 1016, { ...lead, stepNumber: 3, messages: [] }),
        ev("completeRun", "r1", 1017, { ...lead, stepNumber: 3, checkpoint: cp4, text: "All done", usage: usage(70, 16) }),
      ],
      r2: [
        ev("startRun", "r2", 1011, { ...helper, stepNumber: 1, initialCheckpoint: checkpoint("cp00", "r2", "helper", "init", 0), inputMessages: [{ type: "userMessage", id: "u2", contents: [{ type: "textPart", text: "summarize" }] }] }),
        ev("startGeneration", "r2", 1012, { ...helper, stepNumber: 1, messages: [] }),
        ev("callTools", "r2", 1013, { ...helper, stepNumber: 1, toolCalls: [call("Bash", { command: "cat notes.txt" }, { skillName: "claude-code", normalized: { toolName: "exec", args: { command: "cat notes.txt" } } })], usage: usage(30, 4) }),
        ev("resolveToolResults", "r2", 1014, { ...helper, stepNumber: 1, toolResults: [result("Bash", "cat: notes.txt: denied", true)] }),
        ev("completeRun", "r2", 1015, { ...helper, stepNumber: 1, checkpoint: cp3, text: "helper done", usage: usage(30, 4) }),
      ],
    },
  };
}

/** The timestamp order of multiRunJob's events (types), the two runs merged. */
export const MULTI_RUN_ORDER = [
  "initializeRuntime", "startRun", "startGeneration", "retry", "callTools", "proxyAccess", "resolveToolResults", "continueToNextStep",
  "startGeneration", "callDelegate", "stopRunByDelegate",
  "startRun", "startGeneration", "callTools", "resolveToolResults", "completeRun",
  "startGeneration", "completeRun",
];

/** A CommandIo that reads jobs from `dir` and captures what the command prints. */
export function capturedIo(dir: string): CommandIo & { out: string; err: string } {
  const captured = {
    cwd: "/nowhere",
    env: { PERSTACK_STORAGE_PATH: dir },
    out: "",
    err: "",
    stdout: (text: string) => void (captured.out += text),
    stderr: (text: string) => void (captured.err += text),
  };
  return captured;
}
