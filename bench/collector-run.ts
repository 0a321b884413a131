// One size of P3, in a process of its own so that the benchmark can stop it at its time or disk budget whatever it
// is doing (feeding the collector, or waiting for the collector's queued writes). It replicates the recording to the
// size asked for, times the baseline, then the collector, in the directory it is given, and reports on stdout, one
// JSON object a line: {"raw": …} once, {"progress": …} every PROGRESS_MS, and {"done": …} at the end.
//
//   node collector-run.ts '{"target": 100000, "recording": "success.jsonl", "dir": "/tmp/…"}'
//
// The baseline splits the same chunks into lines, JSON.parses each and appends it to one file: the least any
// collector must do with these bytes. The collector runs as run-job.ts wires it: the claude-code adapter's parser, a
// RunCollector over a JobStore in <dir>/perstack, the stream written into collector.stdout in 64 KiB chunks as Docker
// delivers it; its clock stops when every file is closed. Both are timed alike, in the same process: warmed up first
// (passes until WARM_LINES lines are done, untimed), then the median of PASSES passes, each of the collector's but the
// last in a directory of its own, removed before the next. So a size compares per-line costs in the steady state,
// steadied against a busy machine: the compiler takes about 40k lines to warm up, which a 10k stream alone would
// measure instead. The collector's first pass, with the compiler cold, is reported apart (once per process, it is
// some 50 ms).
//
// Runs under Node's type stripping (see bench.mjs): imports the built product from dist/, erasable TypeScript only.
import { createWriteStream, mkdirSync, rmSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { RunCollector } from "../dist/src/collector/run-collector.js";
import { newId } from "../dist/src/job/prepare-run.js";
import { claudeCode } from "../dist/src/runtimes/claude-code.js";
import { JobStore } from "../dist/src/storage/job-store.js";
import { recordedClaudeStream, replicateClaudeStream } from "../test/support/stream-replicate.ts";

const CHUNK_BYTES = 64 * 1024;
const PROGRESS_MS = 250;
const PASSES = 5;
/** Lines each side handles before it is timed: the compiler's warm-up (see above). */
const WARM_LINES = 50_000;

export interface CollectorRunRequest {
  target: number;
  recording: string;
  dir: string;
}

/** What the process reports. `lines` counts the lines fed to the collector so far. */
export type CollectorRunReport =
  | { raw: { lines: number; streamBytes: number; rawMs: number } }
  | { progress: { lines: number; events: number; ms: number } }
  | { done: { lines: number; events: number; ms: number; firstMs: number } };

function report(value: CollectorRunReport): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function chunksOf(lines: string[]): Buffer[] {
  const whole = Buffer.from(`${lines.join("\n")}\n`);
  const chunks: Buffer[] = [];
  for (let at = 0; at < whole.length; at += CHUNK_BYTES) chunks.push(whole.subarray(at, at + CHUNK_BYTES));
  return chunks;
}

function newlinesIn(chunk: Buffer): number {
  let count = 0;
  for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) count += 1;
  return count;
}

function writeChunk(stream: NodeJS.WritableStream, chunk: Buffer | string): Promise<void> {
  if (stream.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => stream.once("drain", () => resolve()));
}

function closeStream(stream: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.once("error", reject);
    stream.end(() => resolve());
  });
}

async function rawParseAndAppend(chunks: Buffer[], dir: string): Promise<number> {
  const out = createWriteStream(join(dir, "raw-baseline.jsonl"), { flags: "w" });
  const start = performance.now();
  let carry = "";
  for (const chunk of chunks) {
    const lines = (carry + chunk.toString("utf8")).split("\n");
    carry = lines.pop() ?? "";
    for (const line of lines) {
      if (line === "") continue;
      JSON.parse(line);
      await writeChunk(out, `${line}\n`);
    }
  }
  await closeStream(out);
  return performance.now() - start;
}

/** One pass of the collector over the stream, into `dir`: its time, lines and events. */
async function collect(chunks: Buffer[], dir: string): Promise<{ lines: number; events: number; ms: number }> {
  const jobId = newId();
  const runId = newId();
  const store = new JobStore(join(dir, "perstack"), jobId);
  const files = store.openRun(runId);
  const expert = { key: "bench", name: "bench", version: "1.0.0" };
  let events = 0;
  let lines = 0;
  const start = performance.now();
  const progress = setInterval(() => report({ progress: { lines, events, ms: performance.now() - start } }), PROGRESS_MS);
  try {
    const collector = new RunCollector({
      jobId,
      runId,
      store,
      files,
      parser: claudeCode.createParser({
        jobId,
        runId,
        expert,
        instruction: "Benchmark instruction.",
        query: "Benchmark query.",
        runtime: "claude-code",
        metadata: {},
        newId,
        now: Date.now,
      }),
      newId,
      now: Date.now,
      onEvent: () => {
        events += 1;
      },
      experts: new Set([expert.key]),
    });
    for (const chunk of chunks) {
      await writeChunk(collector.stdout, chunk);
      lines += newlinesIn(chunk);
    }
    await new Promise<void>((resolve) => collector.stdout.end(() => resolve()));
    await collector.finish(0);
    await files.close();
    return { lines, events, ms: performance.now() - start };
  } finally {
    clearInterval(progress);
  }
}

function medianOf(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

async function main(): Promise<void> {
  // The benchmark reads stdout: once it is gone, nothing here is wanted, and nothing more may be written to disk.
  process.stdout.on("error", () => process.exit(1));
  const request = JSON.parse(process.argv[2] ?? "{}") as CollectorRunRequest;
  // Only the chunks are kept: the stream's lines as strings (as big as the stream) would stay in the old generation
  // through every pass and make each young-generation collection of both sides slower the bigger the stream.
  const { chunks, lineCount } = ((lines) => ({ chunks: chunksOf(lines), lineCount: lines.length }))(replicateClaudeStream(recordedClaudeStream(request.recording), request.target));
  const warmPasses = Math.max(1, Math.ceil(WARM_LINES / Math.max(1, lineCount)));
  const rawTimes: number[] = [];
  for (let i = 0; i < warmPasses + PASSES; i++) rawTimes.push(await rawParseAndAppend(chunks, request.dir));
  const rawMs = medianOf(rawTimes.slice(warmPasses));
  report({ raw: { lines: lineCount, streamBytes: chunks.reduce((sum, chunk) => sum + chunk.length, 0), rawMs } });
  const passes: Array<{ lines: number; events: number; ms: number }> = [];
  for (let i = 1; i < warmPasses + PASSES; i++) {
    const passDir = join(request.dir, `pass-${i}`);
    mkdirSync(passDir);
    passes.push(await collect(chunks, passDir));
    rmSync(passDir, { recursive: true, force: true });
  }
  // The last pass's files stay, for the benchmark to weigh what the collector wrote.
  passes.push(await collect(chunks, request.dir));
  const timed = passes.slice(warmPasses);
  report({ done: { ...passes.at(-1)!, ms: medianOf(timed.map((pass) => pass.ms)), firstMs: passes[0]!.ms } });
}

await main();
