// The benchmarks that run real sandboxes (P1, P2, P4, P5): `perstack run` of the built CLI against the scripted
// fake Anthropic server, on the built-in perstack runtime. Each one returns its figures and the table rows that
// show them; none of them judges a timing.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { bytesUnder } from "./disk-usage.ts";
import type { BenchFake, FakeStep } from "./fake-model.ts";
import { describeFailure, type BenchSession, type Event, type PerstackRun } from "./bench-session.ts";
import { median, type Row } from "./report.ts";

export const EXPERT = "bench";
const TRIVIAL_QUERY = "Say done.";
/** The first run of a session may build the agent, proxy and gateway images. */
const FIRST_RUN_TIMEOUT_MS = 20 * 60_000;
const RUN_TIMEOUT_MS = 5 * 60_000;
const BARE_TIMEOUT_MS = 2 * 60_000;
const BATCH_TIMEOUT_MS = 10 * 60_000;

export function benchToml(fake: BenchFake): string {
  return `# Written by npm run bench: the model is the scripted fake server.
runtime = "perstack"
model = "claude-sonnet-4-5"
maxRetries = 0

[provider]
providerName = "anthropic"
[provider.setting]
baseUrl = "${fake.sandboxUrl}"

[experts."${EXPERT}"]
description = "Answers what the benchmark's fake model scripts."
instruction = "Do what you are asked, then answer in one line."
`;
}

/** The runtimes P5 weighs: the built-in engine, and a vendor CLI whose own output does not repeat the history. */
export const P5_RUNTIMES = ["perstack", "claude-code"] as const;
export type P5Runtime = (typeof P5_RUNTIMES)[number];

/** The query of a P5 run of `steps` tool steps on `runtime`; the fake answers it with that run's script. */
const stepsQuery = (runtime: P5Runtime, steps: number) => `Write ${steps} small files [bench-${runtime}-steps-${steps}].`;

/** One small-file write in the runtime's own tool; every file is new (Claude Code's Write replaces only files it read). */
function writeStep(runtime: P5Runtime, steps: number, i: number): FakeStep["toolUse"] {
  const text = `note ${i} of ${steps}\n`;
  return runtime === "perstack"
    ? [{ name: "writeTextFile", input: { path: `notes-${runtime}-${steps}-${i}.txt`, text } }]
    : [{ name: "Write", input: { file_path: `/workspace/notes-${runtime}-${steps}-${i}.txt`, content: text } }];
}

/**
 * What the fake answers: a plain answer at once for any conversation (the trivial run), and for each P5 runtime and
 * size a script of that many small file writes and then the answer.
 */
export function benchScript(stepCounts: number[]): FakeStep[] {
  const steps: FakeStep[] = [{ text: "Done." }];
  for (const runtime of P5_RUNTIMES) {
    for (const count of stepCounts) {
      const forQuery = `[bench-${runtime}-steps-${count}]`;
      for (let i = 1; i <= count; i++) steps.push({ toolUse: writeStep(runtime, count, i), forQuery });
      steps.push({ text: `Wrote ${count} files.`, forQuery });
    }
  }
  return steps;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export interface P1Result {
  /** With the default warm pool (PERSTACK_WARM_POOL=1): the run claims the shell the run before it left. */
  p1Ratio: number;
  p1SandboxedMedianMs: number;
  p1BareMedianMs: number;
  p1SandboxedMs: number[];
  p1BareMs: number[];
  /** After each sandboxed run's exit, until its sandbox was gone from the engine (and the next shell made). */
  p1TeardownAfterExitMs: number[];
  /** What the sandbox adds to the same engine's run, in ms: the sandboxed median less the bare one. */
  p1OverheadMs: number;
  /** When each milestone of a sandboxed run came (median ms after its command started), from its own events. */
  p1MilestonesMs: Record<string, number>;
  /** The same with PERSTACK_WARM_POOL=0: every run creates its own networks and sidecars. */
  p1ColdRatio: number;
  p1ColdMedianMs: number;
  p1ColdMs: number[];
  p1ColdOverheadMs: number;
  p1ColdMilestonesMs: Record<string, number>;
}

/** A sandboxed run's milestones, by the first event that marks each. */
const P1_MILESTONES: Array<[string, (e: Event) => boolean]> = [
  ["engine started (initializeRuntime)", (e) => e.type === "initializeRuntime"],
  ["skills connected", (e) => e.type === "skillConnected"],
  ["proxy ready", (e) => e.type === "dockerContainerStatus" && e.service === "proxy" && e.status === "running"],
  ["gateway ready", (e) => e.type === "dockerContainerStatus" && e.service === "gateway" && e.status === "running"],
  ["agent let go (both ready)", (e) => e.type === "dockerContainerStatus" && e.service === "agent" && e.status === "running"],
  ["model called (startGeneration)", (e) => e.type === "startGeneration"],
  ["run completed (completeRun)", (e) => e.type === "completeRun"],
  ["agent's container exited", (e) => e.type === "dockerContainerStatus" && e.service === "agent" && typeof e.status === "string" && e.status.startsWith("exited")],
];

/** Median ms after the command's start of each milestone found in every run. */
function milestones(runs: PerstackRun[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, marks] of P1_MILESTONES) {
    const at = runs.flatMap((run) => {
      const event = run.events.find(marks);
      return typeof event?.timestamp === "number" ? [event.timestamp - run.startedAt] : [];
    });
    if (at.length === runs.length && at.length > 0) out[name] = Math.round(median(at));
  }
  out["command exited"] = Math.round(median(runs.map((run) => run.ms)));
  return out;
}

/** The product's default: one warm shell kept ready (src/plan/warm-shell.ts DEFAULT_WARM_POOL). */
const WARM_ENV = { PERSTACK_WARM_POOL: "1" };
/**
 * No warm shells. Its runs take their subnets from a pool of their own, so that their teardown, which empties the
 * warm pool of the spec it ran with, leaves the warm runs' shell alone.
 */
export const COLD_ENV = { PERSTACK_WARM_POOL: "0", PERSTACK_SUBNET_POOL: "172.28.0.0/16" };

/**
 * P1: a trivial run through the whole sandbox (CLI start, image checks, networks or a warm shell, proxy, gateway,
 * agent, collector, cleanup) against the same engine, image and model call in a bare `docker run --rm`. In turn: a
 * run as the product runs by default (claiming the warm shell the run before left), a bare run, and a run with no
 * warm pool (creating its own networks and sidecars); after one warm-up run. Each run's sandbox is gone, and the next
 * shell made, before the next run starts.
 */
export async function sandboxOverhead(session: BenchSession, fake: BenchFake, repeats: number, say: (m: string) => void): Promise<{ result: P1Result; rows: Row[] }> {
  const ws = session.workspace(benchToml(fake));
  say("P1: warm-up run (builds the images if they are missing)");
  await session.completedRun(ws, EXPERT, TRIVIAL_QUERY, FIRST_RUN_TIMEOUT_MS, [], WARM_ENV);
  const plan = await session.agentPlan(ws, EXPERT, TRIVIAL_QUERY);
  const bare = async () => {
    const run = await session.bareRun(plan, fake.sandboxUrl, BARE_TIMEOUT_MS);
    if (!run.completed) throw new Error(`the bare docker run of ${plan.image} did not complete: ${describeFailure(run)}`);
    return run.ms;
  };
  await bare();
  const warmRuns: PerstackRun[] = [];
  const coldRuns: PerstackRun[] = [];
  const teardowns: number[] = [];
  const bareMs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    say(`P1: run ${i + 1}/${repeats} (warm, bare, cold)`);
    const warm = await session.completedRun(ws, EXPERT, TRIVIAL_QUERY, RUN_TIMEOUT_MS, [], WARM_ENV);
    warmRuns.push(warm);
    if (warm.teardownMs !== undefined) teardowns.push(warm.teardownMs);
    bareMs.push(await bare());
    coldRuns.push(await session.completedRun(ws, EXPERT, TRIVIAL_QUERY, RUN_TIMEOUT_MS, [], COLD_ENV));
  }
  const sandboxed = warmRuns.map((run) => run.ms);
  const cold = coldRuns.map((run) => run.ms);
  const s = median(sandboxed);
  const c = median(cold);
  const b = median(bareMs);
  const gone = teardowns.length > 0 ? `; its sandbox gone a median ${seconds(median(teardowns))} after it exits (and the next shell made after that; waited for before the next run)` : "";
  const marks = milestones(warmRuns);
  const coldMarks = milestones(coldRuns);
  const markText = (m: Record<string, number>) => `median ms after the command started: ${Object.entries(m).map(([name, ms]) => `${name} ${ms}`).join(", ")}`;
  return {
    result: {
      p1Ratio: s / b,
      p1SandboxedMedianMs: s,
      p1BareMedianMs: b,
      p1SandboxedMs: sandboxed,
      p1BareMs: bareMs,
      p1TeardownAfterExitMs: teardowns,
      p1OverheadMs: Math.round(s - b),
      p1MilestonesMs: marks,
      p1ColdRatio: c / b,
      p1ColdMedianMs: c,
      p1ColdMs: cold,
      p1ColdOverheadMs: Math.round(c - b),
      p1ColdMilestonesMs: coldMarks,
    },
    rows: [
      { measure: "P1 trivial run, sandboxed (perstack run)", value: seconds(s), detail: `median of ${repeats}, on the warm shell the run before left (the default); ${sandboxed.map(seconds).join(", ")}${gone}` },
      { measure: "P1 same engine, bare docker run --rm", value: seconds(b), detail: `median of ${repeats}; ${bareMs.map(seconds).join(", ")}` },
      { measure: "P1 ratio sandboxed / bare", value: `${(s / b).toFixed(2)}x`, detail: "p1Ratio" },
      { measure: "P1 what the sandbox adds", value: seconds(s - b), detail: "p1OverheadMs: the medians' difference; unlike the ratio, it does not rise when the engine itself gets faster" },
      { measure: "P1 sandboxed run's milestones", value: "", detail: markText(marks) },
      { measure: "P1 without a warm shell (PERSTACK_WARM_POOL=0)", value: seconds(c), detail: `median of ${repeats}; ${cold.map(seconds).join(", ")}` },
      { measure: "P1 ratio without a warm shell / bare", value: `${(c / b).toFixed(2)}x`, detail: `p1ColdRatio; it adds ${seconds(c - b)} (p1ColdOverheadMs)` },
      { measure: "P1 milestones without a warm shell", value: "", detail: markText(coldMarks) },
    ],
  };
}

const listed = (refs: string[]) => (refs.length > 0 ? ` (${refs.join(", ")})` : "");

export interface P2Result {
  p2ImagesBuilt: number;
  p2FirstRunImagesBuilt: number;
}

/** P2: images built by the second of two identical runs (the first builds whatever is missing). */
export async function imageReuse(session: BenchSession, fake: BenchFake, say: (m: string) => void): Promise<{ result: P2Result; rows: Row[] }> {
  const ws = session.workspace(benchToml(fake));
  say("P2: first run");
  const first = await session.completedRun(ws, EXPERT, TRIVIAL_QUERY, FIRST_RUN_TIMEOUT_MS);
  say("P2: second, identical run");
  const second = await session.completedRun(ws, EXPERT, TRIVIAL_QUERY, RUN_TIMEOUT_MS);
  return {
    result: { p2ImagesBuilt: second.imagesBuilt.length, p2FirstRunImagesBuilt: first.imagesBuilt.length },
    rows: [
      {
        measure: "P2 images built by a second identical run",
        value: String(second.imagesBuilt.length),
        detail: `p2ImagesBuilt${listed(second.imagesBuilt)}; the first run built ${first.imagesBuilt.length}${listed(first.imagesBuilt)}`,
      },
    ],
  };
}

export interface P4Result {
  p4Ratio: number;
  p4Concurrency: number;
  p4SingleMedianMs: number;
  p4BatchMedianMs: number;
  /** Until every sandbox of the batch was gone from the engine (teardown ends after the processes). */
  p4BatchCleanMedianMs: number;
  p4FailedRuns: number;
  /** The same measure for bare `docker run`s of the engine: what the machine allows with no sandbox at all. */
  p4BareRatio: number;
}

/** P4: `concurrency` trivial runs started together (wall time until the last exits) against one run alone. */
export async function concurrentRuns(session: BenchSession, fake: BenchFake, concurrency: number, repeats: number, say: (m: string) => void): Promise<{ result: P4Result; rows: Row[] }> {
  const single = session.workspace(benchToml(fake));
  const workspaces = Array.from({ length: concurrency }, () => session.workspace(benchToml(fake)));
  // Without warm shells: the pool holds one, so at most one of a batch could start warm, and the ratio would weigh
  // that one against a single run that always does.
  say("P4: warm-up run");
  await session.completedRun(single, EXPERT, TRIVIAL_QUERY, FIRST_RUN_TIMEOUT_MS, [], COLD_ENV);
  const singles: number[] = [];
  const batches: number[] = [];
  const cleanBatches: number[] = [];
  let failed = 0;
  const failures: string[] = [];
  for (let i = 0; i < repeats; i++) {
    say(`P4: one run alone (${i + 1}/${repeats})`);
    singles.push((await session.completedRun(single, EXPERT, TRIVIAL_QUERY, RUN_TIMEOUT_MS, [], COLD_ENV)).ms);
    say(`P4: ${concurrency} runs at once (${i + 1}/${repeats})`);
    const start = performance.now();
    const runs: PerstackRun[] = await Promise.all(workspaces.map((ws) => session.perstackRun(ws, EXPERT, TRIVIAL_QUERY, BATCH_TIMEOUT_MS, [], COLD_ENV)));
    batches.push(performance.now() - start);
    for (const run of runs) await session.sandboxGone(run.jobId, run.pid);
    cleanBatches.push(performance.now() - start);
    for (const run of runs.filter((r) => !r.completed)) {
      failed += 1;
      failures.push(describeFailure(run));
    }
  }
  if (failed > 0) say(`P4: ${failed} of ${concurrency * repeats} concurrent runs did not complete; first: ${failures[0]}`);
  // The floor on this machine: the same engine and model call in bare `docker run`s, one alone and as many at once.
  const plan = await session.agentPlan(single, EXPERT, TRIVIAL_QUERY);
  const bareSingles: number[] = [];
  const bareBatches: number[] = [];
  for (let i = 0; i < repeats; i++) {
    say(`P4: bare docker run alone, then ${concurrency} at once (${i + 1}/${repeats})`);
    bareSingles.push((await session.bareRun(plan, fake.sandboxUrl, BARE_TIMEOUT_MS)).ms);
    const start = performance.now();
    await Promise.all(workspaces.map(() => session.bareRun(plan, fake.sandboxUrl, BARE_TIMEOUT_MS)));
    bareBatches.push(performance.now() - start);
  }
  const s = median(singles);
  const b = median(batches);
  const clean = median(cleanBatches);
  const bareRatio = median(bareBatches) / median(bareSingles);
  return {
    result: { p4Ratio: b / s, p4Concurrency: concurrency, p4SingleMedianMs: s, p4BatchMedianMs: b, p4BatchCleanMedianMs: clean, p4FailedRuns: failed, p4BareRatio: bareRatio },
    rows: [
      { measure: "P4 one trivial run alone", value: seconds(s), detail: `median of ${repeats}` },
      { measure: `P4 ${concurrency} trivial runs at once (all done)`, value: seconds(b), detail: `median of ${repeats}; ${failed} run(s) failed; every sandbox gone at ${seconds(clean)}` },
      { measure: `P4 ratio ${concurrency} at once / one`, value: `${(b / s).toFixed(2)}x`, detail: `p4Ratio (${concurrency}x serial work would be ${concurrency}.00x)` },
      {
        measure: `P4 floor: ${concurrency} bare docker runs at once / one`,
        value: `${bareRatio.toFixed(2)}x`,
        detail: `p4BareRatio: ${seconds(median(bareBatches))} / ${seconds(median(bareSingles))}, the same engine with no sandbox (median of ${repeats})`,
      },
    ],
  };
}

export interface StorageFigures {
  runtime: P5Runtime;
  steps: number;
  jobBytes: number;
  rawBytes: number;
  jobBytesPerStep: number;
  rawBytesPerStep: number;
  ratio: number;
}

export interface P5Result {
  /** The built-in perstack runtime at N and 2N steps. */
  p5BytesPerStepRatio: number;
  p5BytesPerStepRatio2N: number;
  /** claude-code at N and 2N steps; null when its runs failed (see p5ClaudeCodeError). */
  p5ClaudeCodeBytesPerStepRatio: number | null;
  p5ClaudeCodeBytesPerStepRatio2N: number | null;
  p5ClaudeCodeError?: string;
  p5: StorageFigures[];
}

async function storageOf(session: BenchSession, ws: string, runtime: P5Runtime, steps: number): Promise<StorageFigures> {
  const run = await session.completedRun(ws, EXPERT, stepsQuery(runtime, steps), FIRST_RUN_TIMEOUT_MS, ["--runtime", runtime]);
  const jobDir = join(ws, "perstack", "jobs", run.jobId ?? "(no job id)");
  if (!run.jobId || !existsSync(jobDir)) throw new Error(`P5: the ${runtime} run's job directory ${jobDir} is missing`);
  // The root run's generations are its steps (one startGeneration per step).
  const rootRun = run.events.find((e) => e.type === "startRun")?.runId;
  const stepCount = new Set(run.events.filter((e) => e.type === "startGeneration" && e.runId === rootRun).map((e) => e.stepNumber)).size;
  if (stepCount !== steps + 1) throw new Error(`P5: the ${runtime} run took ${stepCount} steps, its script has ${steps + 1}`);
  const { total, named } = bytesUnder(jobDir, "raw.log");
  if (named === 0) throw new Error(`P5: no raw.log under ${jobDir}`);
  return { runtime, steps: stepCount, jobBytes: total, rawBytes: named, jobBytesPerStep: total / stepCount, rawBytesPerStep: named / stepCount, ratio: total / named };
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

function storageRows(n: StorageFigures, twoN: StorageFigures, keys: [string, string]): Row[] {
  const row = (f: StorageFigures, key: string): Row => ({
    measure: `P5 ${f.runtime}: job bytes/step over raw.log bytes/step, ${f.steps} steps`,
    value: `${f.ratio.toFixed(2)}x`,
    detail: `${key}; ${kb(f.jobBytesPerStep)} vs ${kb(f.rawBytesPerStep)} per step (job ${kb(f.jobBytes)}, raw.log ${kb(f.rawBytes)})`,
  });
  return [
    row(n, keys[0]),
    row(twoN, keys[1]),
    {
      measure: `P5 ${n.runtime}: job bytes/step growth, ${n.steps} -> ${twoN.steps} steps`,
      value: `${(twoN.jobBytesPerStep / n.jobBytesPerStep).toFixed(2)}x`,
      detail: `1.00x is flat (storage linear in steps); raw.log bytes/step grew ${(twoN.rawBytesPerStep / n.rawBytesPerStep).toFixed(2)}x`,
    },
  ];
}

/**
 * P5: what a run leaves under perstack/jobs/<job> per step, against the agent's own output (raw.log) per step, on
 * scripted runs of N and 2N small file writes, on the built-in runtime and on claude-code. Per-step figures that
 * stay flat from N to 2N mean storage grows linearly with the run.
 */
export async function storagePerStep(session: BenchSession, fake: BenchFake, steps: number, say: (m: string) => void): Promise<{ result: P5Result; rows: Row[] }> {
  const ws = session.workspace(benchToml(fake));
  const pair = async (runtime: P5Runtime): Promise<[StorageFigures, StorageFigures]> => {
    say(`P5: ${runtime}, run of ${steps} tool steps`);
    const n = await storageOf(session, ws, runtime, steps);
    say(`P5: ${runtime}, run of ${2 * steps} tool steps`);
    return [n, await storageOf(session, ws, runtime, 2 * steps)];
  };
  const [n, twoN] = await pair("perstack");
  const rows = storageRows(n, twoN, ["p5BytesPerStepRatio", "p5BytesPerStepRatio2N"]);
  const result: P5Result = { p5BytesPerStepRatio: n.ratio, p5BytesPerStepRatio2N: twoN.ratio, p5ClaudeCodeBytesPerStepRatio: null, p5ClaudeCodeBytesPerStepRatio2N: null, p5: [n, twoN] };
  try {
    const [ccN, cc2N] = await pair("claude-code");
    rows.push(...storageRows(ccN, cc2N, ["p5ClaudeCodeBytesPerStepRatio", "p5ClaudeCodeBytesPerStepRatio2N"]));
    Object.assign(result, { p5ClaudeCodeBytesPerStepRatio: ccN.ratio, p5ClaudeCodeBytesPerStepRatio2N: cc2N.ratio });
    result.p5.push(ccN, cc2N);
  } catch (error) {
    // The claude-code image installs the CLI from the npm registry: without one, P5 still has the built-in runtime.
    result.p5ClaudeCodeError = (error as Error).message;
    rows.push({ measure: "P5 claude-code failed", value: "-", detail: result.p5ClaudeCodeError.slice(0, 300) });
    say(`P5: claude-code failed: ${result.p5ClaudeCodeError}`);
  }
  return { result, rows };
}
