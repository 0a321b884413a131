// P3: how fast the collector turns a Claude Code stream into Perstack events on disk, against the least any
// collector must do with the same bytes (split into lines, JSON.parse each, append it to a file), on a recorded
// stream replicated to each size. Each size runs in a process of its own (collector-run.ts), watched from here: past
// its time budget, or once what it wrote passes its disk budget, it is killed and its figures are those of the
// lines it got through, flagged as cut. A collector whose writes grow faster than its input must not fill the disk,
// and its queued writes may outlast the feeding of the stream, so the watch covers both.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type { CollectorRunReport, CollectorRunRequest } from "./collector-run.ts";
import { bytesUnder } from "./disk-usage.ts";
import type { Row } from "./report.ts";

const CHILD = fileURLToPath(new URL("./collector-run.ts", import.meta.url));
const WATCH_MS = 500;
/** The disk budget never takes more than this share of the free space. */
const MAX_SHARE_OF_FREE_SPACE = 0.25;

/** How long the collector may take, and how much it may write, before its run is stopped. */
export interface CollectorBudget {
  ms: number;
  bytes: number;
}

export interface ThroughputResult {
  /** The size asked for, and the replicated stream's (a whole number of turns). */
  target: number;
  lines: number;
  /** Lines fed to the collector before it was stopped (all of them unless cut). */
  linesDone: number;
  /**
   * The collector passed its time or disk budget and was stopped before it finished: the figures are for the lines
   * fed by then, with the time until the stop (upper bounds on its rate and its ratio).
   */
  cut: boolean;
  cutReason?: string;
  collectorMs: number;
  /** Normalized events the collector emitted. */
  events: number;
  rawMs: number;
  /** The stream's bytes, and what the collector wrote under its perstack/ directory for them (raw.log included). */
  streamBytes: number;
  writtenBytes: number;
  eventsPerSecond: number;
  linesPerSecond: number;
  rawLinesPerSecond: number;
  /** The collector's lines per second over the raw baseline's: 0.5 is half as fast as parse plus append. */
  ratio: number;
  /** The same for the collector's first pass alone, the compiler still cold (undefined when cut before it ended). */
  firstPassRatio: number | undefined;
}

/** One size, in its own process and temporary directory (removed afterwards, whatever happened). */
export async function measureThroughput(recording: string, target: number, budget: CollectorBudget): Promise<ThroughputResult> {
  const dir = mkdtempSync(join(tmpdir(), "perstack-bench-collector-"));
  const free = statfsSync(dir);
  const bytesBudget = Math.min(budget.bytes, Math.floor(free.bavail * free.bsize * MAX_SHARE_OF_FREE_SPACE));
  try {
    const request: CollectorRunRequest = { target, recording, dir };
    const child = spawn(process.execPath, [...process.execArgv, CHILD, JSON.stringify(request)], { stdio: ["ignore", "pipe", "pipe"] });
    let raw: { lines: number; streamBytes: number; rawMs: number } | undefined;
    let last: { lines: number; events: number; ms: number; firstMs?: number } | undefined;
    let done = false;
    let collectorStart: number | undefined;
    let cutReason: string | undefined;
    let stderr = "";
    let pending = "";
    child.stdout.on("data", (chunk: Buffer) => {
      const lines = (pending + chunk.toString("utf8")).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const message = JSON.parse(line) as CollectorRunReport;
        if ("raw" in message) {
          raw = message.raw;
          collectorStart = performance.now();
        } else if ("progress" in message) last = message.progress;
        else {
          last = message.done;
          done = true;
        }
      }
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2_000);
    });
    const spawned = performance.now();
    const watch = setInterval(() => {
      if (cutReason) return;
      // Before the collector starts, the same budget bounds replicating the stream and the baseline.
      const elapsed = performance.now() - (collectorStart ?? spawned);
      if (elapsed > budget.ms) cutReason = `time budget of ${budget.ms / 1000} s`;
      else {
        try {
          if (bytesUnder(dir).total > bytesBudget) cutReason = `disk budget of ${(bytesBudget / 1024 ** 2).toFixed(0)} MiB`;
        } catch (error) {
          cutReason = `unreadable directory (${(error as Error).message})`;
        }
      }
      if (cutReason) child.kill("SIGKILL");
    }, WATCH_MS);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal }));
    }).finally(() => clearInterval(watch));
    if (!raw || !last || (!done && !cutReason)) {
      throw new Error(`the collector run for ${target} lines failed (exit ${exit.code ?? exit.signal}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`);
    }
    const writtenBytes = bytesUnder(join(dir, "perstack")).total;
    const seconds = last.ms / 1000;
    const linesPerSecond = last.lines / seconds;
    const rawLinesPerSecond = raw.lines / (raw.rawMs / 1000);
    return {
      target,
      lines: raw.lines,
      linesDone: last.lines,
      cut: !done,
      ...(done ? {} : { cutReason }),
      collectorMs: last.ms,
      events: last.events,
      rawMs: raw.rawMs,
      streamBytes: raw.streamBytes,
      writtenBytes,
      eventsPerSecond: last.events / seconds,
      linesPerSecond,
      rawLinesPerSecond,
      ratio: linesPerSecond / rawLinesPerSecond,
      firstPassRatio: done && last.firstMs ? last.lines / (last.firstMs / 1000) / rawLinesPerSecond : undefined,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface P3Result {
  p3EventsPerSecond: number;
  p3Ratio: number;
  /** The headline size's collector was stopped at its budget: its rate and ratio are upper bounds. */
  p3Cut: boolean;
  p3: ThroughputResult[];
}

/** P3 at each size; the headline figures (p3EventsPerSecond, p3Ratio) are those at `headline` lines. */
export async function collectorThroughput(recording: string, sizes: number[], headline: number, budget: CollectorBudget, say: (message: string) => void): Promise<{ result: P3Result; rows: Row[] }> {
  const figures: ThroughputResult[] = [];
  for (const size of sizes) {
    say(`P3: ${size} lines`);
    figures.push(await measureThroughput(recording, size, budget));
  }
  const main = figures.find((f) => f.target === headline) ?? figures[figures.length - 1]!;
  const rate = (perSecond: number) => `${Math.round(perSecond).toLocaleString("en-US")}/s`;
  const rows: Row[] = figures.flatMap((f) => {
    const cut = f.cut
      ? `; CUT at its ${f.cutReason} with ${f.linesDone} lines fed and the run unfinished: the rate and the ratio are upper bounds`
      : "";
    return [
      {
        measure: `P3 collector, ${f.target.toLocaleString("en-US")} lines`,
        value: rate(f.eventsPerSecond),
        detail: `events/s; ${rate(f.linesPerSecond)} lines (of ${f.lines}), ${f.events} events in ${(f.collectorMs / 1000).toFixed(2)} s, wrote ${(f.writtenBytes / 1024 ** 2).toFixed(1)} MiB for ${(f.streamBytes / 1024 ** 2).toFixed(1)} MiB of stream${cut}`,
      },
      {
        measure: `P3 collector / raw parse+append, ${f.target.toLocaleString("en-US")} lines`,
        value: `${f.ratio.toFixed(2)}x`,
        detail: `lines/s over raw's ${rate(f.rawLinesPerSecond)}, medians of five passes each, after 50k lines of warm-up${f.firstPassRatio !== undefined ? `; the collector's first pass alone (cold compiler) ${f.firstPassRatio.toFixed(2)}x` : ""}${f === main ? "; p3Ratio" : ""}`,
      },
    ];
  });
  return { result: { p3EventsPerSecond: main.eventsPerSecond, p3Ratio: main.ratio, p3Cut: main.cut, p3: figures }, rows };
}
