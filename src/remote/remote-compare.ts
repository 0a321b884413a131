// `perstack compare --server <url>`: the comparison is made by perstack serve (POST /v1/comparisons: one run per
// runtime, each its own job on its own copy of the uploaded workspace), followed until every run has ended, and then
// shown and kept as a local comparison is: the same progress lines, the same table (or --json), comparison.json and
// report.html in perstack/comparisons/<id> (or --out). The local workspace is only read: as for a local compare, no
// run's changes come back to it.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import type { CompareOptions } from "../cli/compare-command.js";
import { jsonTerminalSafe, terminalSafe } from "../cli/terminal-text.js";
import { parseRuntimes } from "../compare/compare-request.js";
import type { Comparison } from "../compare/comparison.js";
import { formatComparisonTable } from "../compare/comparison-table.js";
import { loadConfig } from "../config/load.js";
import { DEFAULTS } from "../config/schema.js";
import { InvalidOptionError, ServerFailedError } from "../errors.js";
import { perstackStorageDir } from "../storage/storage-dir.js";
import { remoteCompareFields } from "./remote-options.js";
import { packUpload, remoteWorkspace } from "./remote-workspace.js";
import { GOING_STATUSES, ServerClient, type ComparisonView } from "./server-client.js";
import type { ServerTarget } from "./server-target.js";

const EXIT = { produced: 0, interrupted: 130 } as const;
const POLL_MS = 1_000;
const CANCEL_WAIT_MS = 60_000;

const spread = z.looseObject({ median: z.number(), min: z.number(), max: z.number() });
/** What the table and --json read of a comparison: checked before they read it (the server's, and the agents'). */
const comparisonSchema = z.looseObject({
  version: z.number(),
  id: z.string(),
  repeat: z.number(),
  runs: z.array(z.looseObject({ runtime: z.string(), repeat: z.number(), status: z.string(), error: z.string().optional() })),
  skipped: z.array(z.looseObject({ runtime: z.string(), reason: z.string() })),
  summary: z.array(
    z.looseObject({
      runtime: z.string(),
      runs: z.number(),
      completed: z.number(),
      checksPassed: z.number().optional(),
      wallTimeMs: spread,
      steps: spread,
      toolCalls: spread,
      inputTokens: spread,
      outputTokens: spread,
      cachedInputTokens: spread,
      costUsd: spread.optional(),
      costSource: z.string(),
      retries: spread,
      blockedEgress: spread,
    }),
  ),
  warnings: z.array(z.string()),
});

export async function compareRemote(expertKey: string | undefined, query: string | undefined, options: CompareOptions, target: ServerTarget): Promise<number> {
  const { model } = remoteCompareFields(options);
  if (expertKey === undefined || query === undefined) throw new InvalidOptionError('give an expert and a query: perstack compare <expert> "<query>" --runtimes perstack,claude-code --server <url>');
  if (options.runtimes === undefined) throw new InvalidOptionError("--runtimes is required: the runtimes to compare, e.g. --runtimes perstack,claude-code,gemini,codex");
  if (options.runtime !== undefined) throw new InvalidOptionError("--runtime names one runtime; compare takes --runtimes a,b,c");
  if (options.jobId !== undefined) throw new InvalidOptionError("--job-id names one job; compare records one job per run");
  const runtimes = parseRuntimes(options.runtimes);
  const say = (text: string) => void process.stderr.write(`${terminalSafe(text)}\n`);
  const cwd = process.cwd();
  const loaded = loadConfig({ cwd, ...(options.config ? { configPath: options.config } : {}) });
  for (const warning of loaded.warnings) say(`warning: ${warning}`);
  const perstackDir = perstackStorageDir(cwd, process.env);
  const workspace = remoteWorkspace({
    cwd,
    ...(options.workspace !== undefined ? { workspace: options.workspace } : {}),
    configPath: loaded.path,
    configExplicit: options.config !== undefined,
    envPath: loaded.file.envPath ?? DEFAULTS.envPath,
    perstackDir,
  });
  const client = new ServerClient(target);

  const submitting = new AbortController();
  let cancelRuns: (() => void) | undefined;
  let cancelled = false;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1 && cancelRuns) {
      say(`\n${signal}: cancelling the comparison's runs on ${client.base}… (again to stop waiting)`);
      cancelRuns();
    } else if (signals === 1) {
      say(`\n${signal}: stopping the submission to ${client.base}…`);
      submitting.abort();
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const packed = await packUpload(workspace);
    let submitted;
    try {
      // The comparison route takes JSON only: the archive goes as base64.
      const archive = readFileSync(packed.file).toString("base64");
      submitted = await client.submitComparison({ config: readFileSync(loaded.path, "utf8"), expert: expertKey, query, runtimes, ...(model !== undefined ? { model } : {}), workspace: archive }, submitting.signal);
    } finally {
      await packed.dispose();
    }
    const id = submitted.id;
    const seen = new Map<string, string>();
    const report = (runs: ComparisonView["runs"]) => {
      for (const run of runs) {
        const before = seen.get(run.jobId);
        if (before === run.status) continue;
        seen.set(run.jobId, run.status);
        if (run.status === "queued") say(`${run.runtime} #1: queued (job ${run.jobId})`);
        else if (run.status === "running") say(`${run.runtime} #1: started (job ${run.jobId})`);
        else say(`${run.runtime} #1: ${run.status}`);
      }
    };
    report(submitted.runs);
    cancelRuns = () => {
      cancelled = true;
      for (const run of submitted.runs) {
        if (!GOING_STATUSES.has(seen.get(run.jobId) ?? "queued")) continue;
        client.cancelRun(run.jobId).catch((error: unknown) => say(`perstack: could not cancel job ${run.jobId} on ${client.base}: ${(error as Error).message}`));
      }
    };
    if (signals > 0) cancelRuns();
    let view: ComparisonView;
    let cancelledAt: number | undefined;
    for (;;) {
      view = await client.getComparison(id);
      report(view.runs);
      if (view.status === "done") break;
      if (cancelled) cancelledAt ??= Date.now();
      if (cancelledAt !== undefined && Date.now() - cancelledAt > CANCEL_WAIT_MS) {
        say(`perstack: the comparison's runs did not stop within ${CANCEL_WAIT_MS / 1000} s; no longer waiting (perstack jobs --server ${client.base})`);
        return EXIT.interrupted;
      }
      await new Promise((done) => setTimeout(done, POLL_MS));
    }
    const parsed = comparisonSchema.safeParse(view.comparison);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ServerFailedError(`comparison ${id} from ${client.base} is not one this perstack can show (${issue?.path.join(".") ?? ""}: ${issue?.message ?? "missing"}); see ${client.base}/v1/comparisons/${id}/report`);
    }
    const comparison = parsed.data as unknown as Comparison;
    const dir = options.out ? resolve(options.out) : join(perstackDir, "comparisons", id);
    mkdirSync(dir, { recursive: true });
    const files = { json: join(dir, "comparison.json"), html: join(dir, "report.html") };
    writeFileSync(files.json, `${JSON.stringify(comparison, null, 2)}\n`);
    // The server's own report: the same renderer a local compare writes it with.
    writeFileSync(files.html, await client.getComparisonReport(id));
    if (options.json) process.stdout.write(`${jsonTerminalSafe(JSON.stringify(comparison, null, 2))}\n`);
    else process.stdout.write(terminalSafe(formatComparisonTable(comparison, files)));
    return cancelled ? EXIT.interrupted : EXIT.produced;
  } catch (error) {
    if (submitting.signal.aborted && (error as Error).name === "AbortError") return EXIT.interrupted;
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
