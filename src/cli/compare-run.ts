// `perstack compare`'s work: progress lines, the runs, the files it writes and its exit code. Loaded only when the
// command runs (compare-command.ts registers it).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { checkCounts, parseModels, parseRuntimes } from "../compare/compare-request.js";
import type { Comparison } from "../compare/comparison.js";
import { formatComparisonTable } from "../compare/comparison-table.js";
import { formatUsd } from "../compare/report-charts.js";
import { renderReportHtml } from "../compare/report-html.js";
import { comparisonFromJobs, runComparison, type ComparisonProgress } from "../compare/run-comparison.js";
import { InvalidOptionError } from "../errors.js";
import { formatDuration } from "../history/display-units.js";
import { isSafeId } from "../model/ids.js";
import { perstackDirOf } from "../job/prepare-run.js";
import { packagePath } from "../package-root.js";
import { removeLeftovers } from "../sandbox/leftovers.js";
import { SandboxResources } from "../sandbox/sandbox-resources.js";
import { handleInterrupts } from "./interrupts.js";
import { baseImagesFor } from "./base-image-choice.js";
import type { CompareOptions } from "./compare-command.js";
import { runRequest } from "./run-options.js";
import { terminalSafe } from "./terminal-text.js";

const EXIT = { produced: 0, failed: 1, interrupted: 130 } as const;
const PERSTACK_VERSION = (JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { version: string }).version;

function progressLine(progress: ComparisonProgress): string {
  switch (progress.kind) {
    case "skipped":
      return `${progress.runtime}: skipped: ${progress.reason}`;
    case "building":
      return `${progress.runtime}: image ${progress.image}`;
    case "started":
      return `${progress.runtime} #${progress.repeat + 1}: started (job ${progress.jobId})`;
    case "finished": {
      const run = progress.run;
      return `${run.runtime} #${run.repeat + 1}: ${run.status} in ${formatDuration(run.wallTimeMs)}${run.costUsd !== null ? `, ${formatUsd(run.costUsd)}` : ""}`;
    }
    case "checked":
      return `${progress.runtime} #${progress.repeat + 1}: check ${progress.check.passed ? "passed" : progress.check.timedOut ? "timed out" : `failed (exit ${progress.check.exitCode ?? "?"})`}`;
  }
}

/** comparison.json and report.html in `dir`; their paths. */
function writeComparison(comparison: Comparison, dir: string): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, "comparison.json");
  const html = join(dir, "report.html");
  writeFileSync(json, `${JSON.stringify(comparison, null, 2)}\n`);
  writeFileSync(html, renderReportHtml(comparison));
  return { json, html };
}

function print(comparison: Comparison, files: { json: string; html: string }, json: boolean | undefined): void {
  if (json) process.stdout.write(`${JSON.stringify(comparison, null, 2)}\n`);
  else process.stdout.write(terminalSafe(formatComparisonTable(comparison, files)));
}

async function compareFromJobs(options: CompareOptions): Promise<number> {
  const ids = options.from!.split(",").map((id) => id.trim()).filter((id) => id !== "");
  if (ids.length === 0) throw new InvalidOptionError("--from: name one or more job ids, comma-separated (see `perstack jobs`)");
  for (const id of ids) if (!isSafeId(id)) throw new InvalidOptionError(`--from: "${id}" is not a job id (see \`perstack jobs\`)`);
  const perstackDir = perstackDirOf(process.cwd(), process.env);
  const comparison = await comparisonFromJobs(perstackDir, ids, PERSTACK_VERSION);
  // Rebuilding a comparison that ran here must not overwrite it: the rebuilt one goes beside it, in from-jobs/.
  const own = join(perstackDir, "comparisons", comparison.id);
  const dir = options.out ? resolve(options.out) : existsSync(join(own, "comparison.json")) ? join(own, "from-jobs") : own;
  print(comparison, writeComparison(comparison, dir), options.json);
  return EXIT.produced;
}

export async function compareCommand(expertKey: string | undefined, query: string | undefined, options: CompareOptions): Promise<number> {
  if (options.from !== undefined) {
    if (expertKey !== undefined || options.runtimes !== undefined) {
      throw new InvalidOptionError("--from builds the report from recorded jobs: give no expert, query or --runtimes with it");
    }
    return compareFromJobs(options);
  }
  if (expertKey === undefined || query === undefined) throw new InvalidOptionError("give an expert and a query: perstack compare <expert> \"<query>\" --runtimes perstack,claude-code");
  if (options.runtimes === undefined) throw new InvalidOptionError("--runtimes is required: the runtimes to compare, e.g. --runtimes perstack,claude-code,gemini,codex");
  if (options.runtime !== undefined) throw new InvalidOptionError("--runtime names one runtime; compare takes --runtimes a,b,c");
  if (options.jobId !== undefined) throw new InvalidOptionError("--job-id names one job; compare records one job per run");
  const runtimes = parseRuntimes(options.runtimes);
  const { model, perRuntime } = parseModels(options.model, runtimes);
  const { repeat, concurrency } = checkCounts(options.repeat, options.concurrency, runtimes.length * options.repeat);
  // --model is decided per runtime (compare-request.ts), not passed to all as it is.
  const { model: _model, ...runOptions } = options;
  const base = runRequest(expertKey, query, runOptions);

  const { docker, baseImages } = await baseImagesFor(true);
  const removed = await removeLeftovers(docker!);
  const leftovers = [...removed.containers, ...removed.volumes, ...removed.networks];
  if (leftovers.length > 0) process.stderr.write(`removed leftovers of crashed runs: ${leftovers.join(", ")}\n`);
  const resources = new SandboxResources(docker!);
  const interrupts = handleInterrupts(resources, "the comparison", EXIT.interrupted);
  const say = (text: string) => process.stderr.write(`${terminalSafe(text)}\n`);
  try {
    const perstackDir = perstackDirOf(process.cwd(), process.env);
    const result = await runComparison(
      docker!,
      {
        base,
        runtimes,
        repeat,
        concurrency,
        ...(model !== undefined ? { model } : {}),
        perRuntime,
        ...(options.check !== undefined ? { check: options.check } : {}),
        checkTimeoutMs: options.checkTimeout,
        ...(options.out !== undefined ? { outDir: resolve(options.out) } : {}),
        perstackVersion: PERSTACK_VERSION,
      },
      baseImages,
      perstackDir,
      { signal: interrupts.signal, hurry: interrupts.hurry, resources, onProgress: (progress) => say(progressLine(progress)) },
    );
    print(result.comparison, writeComparison(result.comparison, result.outDir), options.json);
    // Runs that ended left their removal under way: it ends before the command does.
    await resources.removeAll();
    const left = resources.remaining();
    if (left.length > 0) say(`perstack: could not remove ${left.map((r) => `${r.kind} ${r.name}`).join(", ")}`);
    return result.interrupted ? EXIT.interrupted : EXIT.produced;
  } finally {
    await resources.removeAll();
    interrupts.dispose();
  }
}

