// `perstack run` and `perstack export`: loaded only when one of them runs, since they bring the planner, the Docker
// client and the sandbox with them (main.ts stays light for --help, log and jobs).
import { mkdirSync, writeFileSync, chmodSync, existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { InvalidOptionError } from "../errors.js";
import { QUERY_PLACEHOLDER, renderExport } from "../plan/export-files.js";
import type { SandboxPlan } from "../plan/sandbox-plan.js";
import { jobTarget, type Continuation } from "../job/continuation.js";
import { loadContinuation } from "../job/load-continuation.js";
import { perstackDirOf, prepareRun } from "../job/prepare-run.js";
import { runJob } from "../job/run-job.js";
import { removeLeftovers } from "../sandbox/leftovers.js";
import { removalCommands, SandboxResources } from "../sandbox/sandbox-resources.js";
import { handOffTeardown } from "../sandbox/teardown-handoff.js";
import { baseImagesFor } from "./base-image-choice.js";
import { takeOverOrphans } from "./take-over.js";
import { RUN_EXIT as EXIT } from "./exit-codes.js";
import { handleInterrupts } from "./interrupts.js";
import { runEventPrinter } from "./event-printer.js";
import { formatWaiting } from "./live-view.js";
import { runRequest, type RunOptions } from "./run-options.js";
import { terminalSafe } from "./terminal-text.js";

/** The plan as printed by --dry-run: build-context file contents are summarised, not dumped. */
function printablePlan(plan: SandboxPlan) {
  return {
    ...plan,
    images: plan.images.map((image) => ({
      ...image,
      contextFiles: image.contextFiles.map((f) => ({ path: f.path, bytes: Buffer.byteLength(f.content) })),
    })),
  };
}

export async function runCommand(expertKey: string, queryArg: string | undefined, options: RunOptions): Promise<number> {
  const flags = {
    ...(queryArg !== undefined ? { query: queryArg } : {}),
    ...(options.continue ? { continue: true } : {}),
    ...(options.continueJob !== undefined ? { continueJob: options.continueJob } : {}),
    ...(options.resumeFrom !== undefined ? { resumeFrom: options.resumeFrom } : {}),
    ...(options.interactiveToolCallResult ? { interactive: true } : {}),
    ...(options.runtime !== undefined ? { runtime: options.runtime } : {}),
  };
  // Flags and the job on disk are checked before Docker is touched: a wrong job id fails in milliseconds.
  const target = jobTarget(flags);
  if (options.jobId !== undefined && target.kind === "continue") {
    throw new InvalidOptionError(`--job-id names a new job; to continue job ${options.jobId}, use --continue-job ${options.jobId} instead`);
  }
  // A job whose perstack process died is recorded first: it may be the one this run continues.
  if (!options.dryRun) await takeOverOrphans(perstackDirOf(process.cwd(), process.env));
  let continuation: Continuation | undefined;
  let query: string;
  if (target.kind === "continue") {
    continuation = loadContinuation(perstackDirOf(process.cwd(), process.env), target, { ...flags, expertKey });
    query = continuation.query;
  } else {
    query = target.query;
  }
  const { docker, baseImages } = await baseImagesFor(!options.dryRun);
  const prepared = prepareRun(
    {
      ...runRequest(expertKey, query, options),
      ...(continuation ? { continuation } : {}),
      ...(options.jobId !== undefined ? { jobId: options.jobId } : {}),
      // A dry run is an inspection: it shows the plan, and names what a real run would miss.
      secrets: options.dryRun ? "warn" : "require",
    },
    baseImages,
  );
  for (const warning of prepared.warnings) process.stderr.write(`warning: ${terminalSafe(warning)}\n`);
  if (options.dryRun) {
    process.stdout.write(`${JSON.stringify(printablePlan(prepared.plan), null, 2)}\n`);
    return 0;
  }
  const removed = await removeLeftovers(docker!);
  const leftovers = [...removed.containers, ...removed.volumes, ...removed.networks];
  if (leftovers.length > 0) process.stderr.write(`removed leftovers of crashed runs: ${leftovers.join(", ")}\n`);

  const resources = new SandboxResources(docker!);
  const interrupts = handleInterrupts(resources, "the run", EXIT.interrupted);
  const { signal: abortSignal, hurry: hurrySignal } = interrupts;
  const say = (stream: NodeJS.WriteStream, text: string) => stream.write(`${terminalSafe(text)}\n`);
  try {
    const printer = runEventPrinter({ ...(options.json ? { json: true } : {}), isRoot: (runId) => runId === prepared.plan.runId });
    const result = await runJob(docker!, prepared, {
      signal: abortSignal,
      hurry: hurrySignal,
      resources,
      leaveRemovalToCaller: true,
      onWaitingForSlot: (running) => say(process.stderr, `waiting for a free run slot (${running} running)…`),
      ...(options.json ? { expandEvents: true } : {}),
      onEvent: (event, expanded) => printer.print(event, expanded),
    });
    if (result.outcome.status === "stoppedByInteractiveTool" && result.outcome.lastCheckpoint) {
      const expert = continuation?.job.coordinatorExpertKey ?? expertKey;
      say(process.stderr, formatWaiting(result.outcome.lastCheckpoint, expert, result.jobId, printer.askers));
    }
    const applied = result.workspace.applied;
    if (!options.json && applied) {
      say(process.stderr, `workspace: copied back ${applied.created.length} created, ${applied.modified.length} modified, ${applied.deleted.length} deleted`);
    }
    if (result.workspace.copyError) say(process.stderr, `perstack: the agent's changes were not copied back (your workspace is as before the run): ${result.workspace.copyError}`);
    if (result.unpricedModels.length > 0) {
      say(process.stderr, `warning: no price for ${result.unpricedModels.join(", ")} in the price table, so job.json's metered.costUsd is null; add it with --pricing <file> or to pricing/prices.json`);
    }
    if (!options.json) say(process.stderr, `job ${result.jobId}: ${result.outcome.status} · ${result.jobDir}`);
    // The result is recorded and printed. The sandbox goes to a teardown process that outlives us (or, if it cannot
    // start, is removed here): the command ends without waiting on Docker for it.
    await removeSandbox(resources, interrupts.hurry.aborted || abortSignal.aborted);
    const left = resources.remaining();
    if (left.length > 0) say(process.stderr, `perstack: could not remove ${left.map((r) => `${r.kind} ${r.name}`).join(", ")}; remove with: ${removalCommands(left).join(" && ")}`);
    if (result.interrupted) return EXIT.interrupted;
    if (result.outcome.status === "stoppedByInteractiveTool") return EXIT.waitingForInput;
    if (result.workspace.copyError) return EXIT.failed;
    return result.outcome.status === "completed" ? EXIT.completed : EXIT.failed;
  } finally {
    await resources.removeAll();
    interrupts.dispose();
  }
}

/** Hands the sandbox to a teardown process; after an interrupt (the user waits for the removal), removes it here. */
async function removeSandbox(resources: SandboxResources, interrupted: boolean): Promise<void> {
  const items = resources.teardownItems();
  if (!interrupted && items.length > 0 && (await handOffTeardown({ ownerPid: process.pid, items, ...(resources.refill ? { refill: resources.refill } : {}) }))) {
    resources.forgetAll();
    return;
  }
  await resources.removeAll();
}

export async function exportCommand(expertKey: string, options: RunOptions & { out: string; force?: boolean }): Promise<number> {
  const out = resolve(options.out);
  if (existsSync(out) && readdirSync(out).length > 0 && !options.force) {
    throw new InvalidOptionError(`--out ${out}: directory is not empty; choose an empty one or pass --force`);
  }
  const { baseImages } = await baseImagesFor(false);
  // Secrets are not needed to export: only their names are written.
  const prepared = prepareRun({ ...runRequest(expertKey, QUERY_PLACEHOLDER, options), secrets: "skip" }, baseImages);
  for (const warning of prepared.plan.warnings) process.stderr.write(`warning: ${warning}\n`);
  const files = renderExport(prepared.plan);
  for (const file of files) {
    const path = join(out, file.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.content);
    if (file.mode) chmodSync(path, file.mode);
  }
  process.stderr.write(`wrote ${files.length} files to ${out}\n`);
  process.stdout.write(`${out}\n`);
  return 0;
}
