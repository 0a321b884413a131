// EFFECTS: `perstack compare` — one Expert on several runtimes, each run on its own copy of the workspace, recorded
// as normal jobs, then compared. Order of work:
//   1. a baseline copy of the user's workspace (the user's own is never written, and may change meanwhile);
//   2. per runtime, a plan (a runtime that cannot run here, for want of a key or an image, is skipped with why)
//      and its images, built once before any run so repeats do not build them side by side;
//   3. the runs, `concurrency` at a time, each on a copy of the baseline; after each, its changes against the
//      baseline and the --check in a fresh sandbox, written beside the job (comparison-run.json) so --from can
//      rebuild the same comparison;
//   4. the comparison from the jobs' records (comparison-build.ts).
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import type Docker from "dockerode";
import { loadConfig } from "../config/load.js";
import { applyRunFlags } from "../config/run-flags.js";
import { findExpert } from "../config/resolve.js";
import { DEFAULTS } from "../config/schema.js";
import { BadInputError } from "../errors.js";
import { newId, prepareRun, type RunRequest } from "../job/prepare-run.js";
import { runJob } from "../job/run-job.js";
import type { BaseImage, BaseImageRole } from "../plan/sandbox-plan.js";
import { ensureImage } from "../sandbox/image-builder.js";
import type { SandboxResources } from "../sandbox/sandbox-resources.js";
import { jobsDir } from "../storage/job-reader.js";
import { runCheck } from "./check-runner.js";
import { buildComparison, comparisonRun } from "./comparison-build.js";
import type { CheckResult, Comparison, ComparisonRun, SkippedRuntime, WorkspaceChanges } from "./comparison.js";
import { runtimeChoice, type RuntimeChoice } from "./compare-request.js";
import { COMPARISON_RUN_FILE, readJobRecord, type ComparisonRunRecord, type JobRecord } from "./job-record.js";
import { copyWorkspace } from "./workspace-copy.js";
import { diffWorkspaces } from "./workspace-diff.js";

export interface ComparisonRequest {
  /** What every run is given: the run options as for `perstack run` (no runtime, no workspace of its own). */
  base: RunRequest;
  runtimes: string[];
  repeat: number;
  concurrency: number;
  model?: string;
  perRuntime: Record<string, string>;
  check?: string;
  /** How long a check may take. */
  checkTimeoutMs: number;
  /** --out, absolute; default <perstack dir>/comparisons/<id>. */
  outDir?: string;
  perstackVersion: string;
}

export type ComparisonProgress =
  | { kind: "skipped"; runtime: string; reason: string }
  | { kind: "building"; runtime: string; image: string }
  | { kind: "started"; runtime: string; repeat: number; jobId: string }
  | { kind: "finished"; run: ComparisonRun }
  | { kind: "checked"; runtime: string; repeat: number; check: CheckResult };

export interface ComparisonHooks {
  signal: AbortSignal;
  hurry: AbortSignal;
  resources: SandboxResources;
  onProgress: (progress: ComparisonProgress) => void;
}

export interface ComparisonResult {
  comparison: Comparison;
  outDir: string;
  interrupted: boolean;
}

interface RunSpec {
  choice: RuntimeChoice;
  repeat: number;
}

const dirName = (runtime: string, repeat: number) => `${runtime}-${repeat + 1}`;

/** One line of an error, without a library's stack or wording beyond its message. */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0]!.slice(0, 500);
}

export async function runComparison(
  docker: Docker,
  request: ComparisonRequest,
  baseImages: Record<BaseImageRole, BaseImage>,
  perstackDir: string,
  hooks: ComparisonHooks,
): Promise<ComparisonResult> {
  const { base } = request;
  // The config and the expert are everyone's: a mistake there is bad input before anything is copied.
  const fromFile = loadConfig({ cwd: base.cwd, ...(base.configPath ? { configPath: base.configPath } : {}) });
  const { loaded } = applyRunFlags(fromFile, base.flags ?? {}, base.cwd);
  findExpert(loaded, base.expertKey);

  const id = newId();
  const outDir = request.outDir ?? join(perstackDir, "comparisons", id);
  await mkdir(outDir, { recursive: true });
  const workspace = resolve(base.cwd, base.workspace ?? ".");
  // Left out of every copy: perstack's records, the comparison itself, and the env files (they hold secrets).
  const configDir = resolve(loaded.path, "..");
  const exclude = [perstackDir, outDir, ...(loaded.file.envPath ?? DEFAULTS.envPath).map((entry) => resolve(configDir, entry))];
  const baseline = join(outDir, "baseline");
  await copyWorkspace(workspace, baseline, { exclude });

  const skipped: SkippedRuntime[] = [];
  const warnings: string[] = [];
  const choices: RuntimeChoice[] = [];
  for (const runtime of request.runtimes) {
    const choice = runtimeChoice(runtime, {
      ...(loaded.file.provider ? { fileProvider: loaded.file.provider.providerName } : {}),
      ...(loaded.file.model ? { fileModel: loaded.file.model } : {}),
      ...(request.model ? { model: request.model } : {}),
      perRuntime: request.perRuntime,
    });
    const skip = (reason: string) => {
      skipped.push({ runtime, reason });
      hooks.onProgress({ kind: "skipped", runtime, reason });
    };
    let plan;
    try {
      plan = prepareRun(runRequestFor(base, choice, baseline), baseImages).plan;
    } catch (error) {
      // No key, a provider or model it cannot use: this runtime cannot run here. Anything else is a real failure.
      if (!(error instanceof BadInputError)) throw error;
      skip(oneLine(error));
      continue;
    }
    try {
      for (const image of plan.images) {
        hooks.onProgress({ kind: "building", runtime, image: image.ref });
        await ensureImage(docker, image, () => undefined, hooks.signal);
      }
    } catch (error) {
      if (hooks.signal.aborted) break;
      skip(`its image could not be built: ${oneLine(error)}`);
      continue;
    }
    warnings.push(...choice.notes);
    choices.push(choice);
  }

  const header = {
    createdAt: Date.now(),
    expertKey: base.expertKey,
    query: base.query,
    runtimes: request.runtimes,
    repeat: request.repeat,
    concurrency: request.concurrency,
    ...(request.check !== undefined ? { check: request.check } : {}),
    skipped,
    warnings,
  };
  const specs: RunSpec[] = [];
  for (let repeat = 0; repeat < request.repeat; repeat += 1) for (const choice of choices) specs.push({ choice, repeat });
  const done: Array<{ jobId?: string; spec: RunSpec; failure?: string }> = [];
  let next = 0;
  const worker = async () => {
    while (!hooks.signal.aborted && next < specs.length) {
      const spec = specs[next]!;
      next += 1;
      done.push(await runOne(docker, request, spec, { baseline, outDir, id, header, baseImages, perstackDir }, hooks));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(request.concurrency, specs.length)) }, worker));
  await rm(baseline, { recursive: true, force: true });

  const records: Array<{ record: Awaited<ReturnType<typeof readJobRecord>>; runtime: string; repeat: number }> = [];
  const failed: ComparisonRun[] = [];
  // In the order asked: runtime by runtime, repeat by repeat.
  const order = (d: (typeof done)[number]) => request.runtimes.indexOf(d.spec.choice.runtime) * 1000 + d.spec.repeat;
  for (const entry of [...done].sort((a, b) => order(a) - order(b))) {
    if (entry.jobId) {
      records.push({ record: await readJobRecord(perstackDir, entry.jobId), runtime: entry.spec.choice.runtime, repeat: entry.spec.repeat });
    } else {
      failed.push(failedRun(entry.spec, entry.failure ?? "did not start"));
    }
  }
  const { skipped: _skipped, warnings: _warnings, ...settings } = header;
  const comparison = buildComparison({ id, ...settings, fromJobs: false }, records, skipped, request.perstackVersion, warnings);
  comparison.runs.push(...failed);
  return { comparison, outDir, interrupted: hooks.signal.aborted };
}

function runRequestFor(base: RunRequest, choice: RuntimeChoice, workspace: string): RunRequest {
  // Each run is a new job: an id given for one job cannot name them all.
  const { jobId: _jobId, ...rest } = base;
  return {
    ...rest,
    runtime: choice.runtime,
    workspace,
    ...(choice.model !== undefined ? { model: choice.model } : {}),
    flags: { ...base.flags, ...(choice.provider !== undefined ? { provider: choice.provider } : {}) },
  };
}

function failedRun(spec: RunSpec, reason: string): ComparisonRun {
  const zero = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, reasoningTokens: 0, totalTokens: 0 };
  return {
    runtime: spec.choice.runtime,
    repeat: spec.repeat,
    jobId: "",
    status: "failedToStart",
    error: reason,
    model: spec.choice.model ?? "default",
    provider: spec.choice.provider ?? "default",
    wallTimeMs: 0,
    steps: 0,
    toolCalls: {},
    toolCallCount: 0,
    selfReported: { usage: zero },
    costUsd: null,
    costSource: "none",
    retries: 0,
    blockedEgress: 0,
    egress: [],
    timeline: [],
    timelineTruncated: 0,
  };
}

interface RunContext {
  baseline: string;
  outDir: string;
  id: string;
  header: NonNullable<ComparisonRunRecord["comparison"]>;
  baseImages: Record<BaseImageRole, BaseImage>;
  perstackDir: string;
}

async function runOne(
  docker: Docker,
  request: ComparisonRequest,
  spec: RunSpec,
  context: RunContext,
  hooks: ComparisonHooks,
): Promise<{ jobId?: string; spec: RunSpec; failure?: string }> {
  const { runtime } = spec.choice;
  const runDir = join(context.outDir, "runs", dirName(runtime, spec.repeat));
  const workspaceDir = join(runDir, "workspace");
  await copyWorkspace(context.baseline, workspaceDir, { exclude: [] });
  let jobId: string | undefined;
  try {
    const planned = prepareRun(runRequestFor(request.base, spec.choice, workspaceDir), context.baseImages);
    // No warm shells in a comparison: the runs share one spec, so the first to claim the engine's shell would start
    // ahead of the others, and their times would not compare.
    const prepared = { ...planned, sharing: { ...planned.sharing, warmPool: 0 } };
    jobId = prepared.plan.jobId;
    hooks.onProgress({ kind: "started", runtime, repeat: spec.repeat, jobId });
    // Its own resources: a run that ends must not remove the containers of the runs beside it.
    await runJob(docker, prepared, { signal: hooks.signal, hurry: hooks.hurry, resources: hooks.resources.child(), onEvent: () => undefined });
  } catch (error) {
    // A run that got a job is compared with what it recorded; one that did not is reported as not started.
    if (!jobId) return { spec, failure: oneLine(error) };
  }
  let changes: WorkspaceChanges | undefined;
  try {
    changes = await diffWorkspaces(context.baseline, workspaceDir);
    await writeFile(join(runDir, "changes.diff"), changes.patch);
  } catch {
    changes = undefined;
  }
  let check: CheckResult | undefined;
  if (request.check !== undefined && !hooks.signal.aborted) {
    try {
      check = await runCheck(docker, {
        command: request.check,
        workspaceDir,
        image: context.baseImages.node.ref,
        user: request.base.user ?? { uid: 1000, gid: 1000 },
        timeoutMs: request.checkTimeoutMs,
        labels: { "perstack.job": jobId, "perstack.comparison": context.id },
      });
    } catch (error) {
      check = { command: request.check, passed: false, exitCode: null, timedOut: false, durationMs: 0, outputTail: `the check could not run: ${oneLine(error)}` };
    }
    hooks.onProgress({ kind: "checked", runtime, repeat: spec.repeat, check: check! });
  }
  const record: ComparisonRunRecord = {
    comparisonId: context.id,
    runtime,
    repeat: spec.repeat,
    ...(changes ? { changes } : {}),
    ...(check ? { check } : {}),
    workspaceDir: relative(context.outDir, workspaceDir),
    comparison: context.header,
  };
  await writeFile(join(jobsDir(context.perstackDir), jobId, COMPARISON_RUN_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
  hooks.onProgress({ kind: "finished", run: comparisonRun(await readJobRecord(context.perstackDir, jobId), { runtime, repeat: spec.repeat }) });
  return { jobId, spec };
}

/**
 * --from: the comparison again, from jobs already recorded. The jobs of one comparison carry its settings (runtimes,
 * repeat, check, skipped runtimes, notes), so they give back the same comparison; other jobs (plain `perstack run`)
 * are compared as they are, their workspace changes unknown.
 */
export async function comparisonFromJobs(perstackDir: string, jobIds: readonly string[], perstackVersion: string): Promise<Comparison> {
  const records: Array<{ record: JobRecord; runtime: string; repeat: number }> = [];
  const counts = new Map<string, number>();
  for (const jobId of jobIds) {
    const record = await readJobRecord(perstackDir, jobId);
    const runtime = record.compare?.runtime ?? record.setting?.runtime?.name ?? record.log.job.runtime;
    const repeat = record.compare?.repeat ?? counts.get(runtime) ?? 0;
    counts.set(runtime, (counts.get(runtime) ?? 0) + 1);
    records.push({ record, runtime, repeat });
  }
  const ids = new Set(records.map((r) => r.record.compare?.comparisonId));
  const saved = ids.size === 1 ? records[0]!.record.compare : undefined;
  if (saved?.comparison) {
    const { skipped, warnings, ...settings } = saved.comparison;
    // The order the comparison listed its runs in, whatever order the ids came in.
    const order = (r: (typeof records)[number]) => settings.runtimes.indexOf(r.runtime) * 1000 + r.repeat;
    records.sort((a, b) => order(a) - order(b));
    return buildComparison({ id: saved.comparisonId, ...settings, fromJobs: true }, records, skipped, perstackVersion, warnings);
  }
  const first = records[0]!.record;
  const runtimes = [...new Set(records.map((r) => r.runtime))];
  const check = records.find((r) => r.record.compare?.check)?.record.compare?.check?.command;
  return buildComparison(
    {
      id: newId(),
      createdAt: Date.now(),
      expertKey: first.log.job.coordinatorExpertKey,
      query: first.setting?.query ?? "",
      runtimes,
      repeat: Math.max(...runtimes.map((runtime) => records.filter((r) => r.runtime === runtime).length)),
      concurrency: 0,
      ...(check !== undefined ? { check } : {}),
      fromJobs: true,
    },
    records,
    [],
    perstackVersion,
  );
}
