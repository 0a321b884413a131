#!/usr/bin/env node
// commander wiring: parse flags, call the stages, print, choose the exit code. No logic beyond that.
import { mkdirSync, writeFileSync, chmodSync, existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { PerstackError, InvalidOptionError } from "../errors.js";
import type { Checkpoint } from "../model/perstack.js";
import { QUERY_PLACEHOLDER, renderExport } from "../plan/export-files.js";
import type { SandboxPlan } from "../plan/sandbox-plan.js";
import { caCertFiles, readCaBundle } from "../config/ca-certs.js";
import { perstackTomlJsonSchemaText, SCHEMA_FILE } from "../config/json-schema.js";
import { jobTarget, type Continuation } from "../job/continuation.js";
import { loadContinuation } from "../job/load-continuation.js";
import { perstackDirOf, prepareRun } from "../job/prepare-run.js";
import { runJob } from "../job/run-job.js";
import { BREAKABLE, runSelftest, type Breakable } from "../job/selftest.js";
import { connectDocker } from "../sandbox/docker-client.js";
import { bootstrapBaseImages, overridesFromEnv, resolveBaseImages } from "../sandbox/base-images.js";
import { pruneImages } from "../sandbox/image-prune.js";
import { removeLeftovers } from "../sandbox/leftovers.js";
import { removalCommands, SandboxResources } from "../sandbox/sandbox-resources.js";
import { registerCompareCommand } from "./compare-command.js";
import { handleInterrupts } from "./interrupts.js";
import { registerJobsCommand } from "./jobs-command.js";
import { addRunOptions, baseImagesFor, collect, runRequest, type RunOptions } from "./run-options.js";
import { formatEvent, formatWaiting } from "./live-view.js";
import { registerLogCommand } from "./log-command.js";
import { terminalSafe } from "./terminal-text.js";

let verbose = false;

/** Exit codes of `perstack run` (also in its --help). */
const EXIT = { completed: 0, failed: 1, badInput: 2, waitingForInput: 3, interrupted: 130 } as const;

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

async function runCommand(expertKey: string, queryArg: string | undefined, options: RunOptions): Promise<number> {
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
    // Delegated runs that stopped to ask the user: their calls are the questions to show.
    const askers: Checkpoint[] = [];
    const result = await runJob(docker!, prepared, {
      signal: abortSignal,
      hurry: hurrySignal,
      resources,
      onEvent: (event) => {
        if (event.type === "stopRunByInteractiveTool" && event.runId !== prepared.plan.runId) askers.push(event.checkpoint);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(event)}\n`);
          return;
        }
        const root = event.runId === prepared.plan.runId;
        const line = formatEvent(event, { root });
        if (line === undefined) return;
        // Only the answer of the run this invocation started is the command's output; delegates' go to the log.
        const toStdout = event.type === "completeRun" && root;
        say(toStdout ? process.stdout : process.stderr, line);
      },
    });
    if (result.outcome.status === "stoppedByInteractiveTool" && result.outcome.lastCheckpoint) {
      const expert = continuation?.job.coordinatorExpertKey ?? expertKey;
      say(process.stderr, formatWaiting(result.outcome.lastCheckpoint, expert, result.jobId, askers));
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
    const left = resources.remaining();
    if (left.length > 0) say(process.stderr, `perstack: could not remove ${left.map((r) => `${r.kind} ${r.name}`).join(", ")}; remove with: ${removalCommands(left).join(" && ")}`);
    if (result.interrupted) return EXIT.interrupted;
    if (result.outcome.status === "stoppedByInteractiveTool") return EXIT.waitingForInput;
    if (result.workspace.copyError) return EXIT.failed;
    return result.outcome.status === "completed" ? EXIT.completed : EXIT.failed;
  } finally {
    interrupts.dispose();
  }
}

async function exportCommand(expertKey: string, options: RunOptions & { out: string; force?: boolean }): Promise<number> {
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

async function bootstrapCommand(options: { mirror?: string; force?: boolean; caCert: string[] }): Promise<number> {
  const docker = await connectDocker();
  const files = caCertFiles(options.caCert, process.env);
  readCaBundle(files, process.cwd()); // the same one-line errors as runs for unreadable files
  const images = await bootstrapBaseImages(docker, {
    ...(options.mirror ? { mirror: options.mirror } : {}),
    ...(options.force ? { force: true } : {}),
    caCertFiles: files,
    onProgress: (message) => process.stderr.write(`${message}\n`),
  });
  for (const image of Object.values(images)) process.stdout.write(`${image.role}\t${image.ref}\t${image.id ?? ""}\n`);
  return 0;
}

async function selftestCommand(options: { runtime?: string; json?: boolean; workspaceMode?: "auto" | "bind" | "copy"; caCert: string[]; unsafeBreak?: Breakable }): Promise<number> {
  const { docker, baseImages } = await baseImagesFor(true);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const result = await runSelftest(docker!, baseImages, {
      ...(options.runtime ? { runtime: options.runtime } : {}),
      ...(options.workspaceMode ? { workspaceMode: options.workspaceMode } : {}),
      caCertFiles: options.caCert,
      processEnv: process.env,
      onProgress: (message) => {
        if (!options.json) process.stderr.write(`${message}\n`);
      },
      signal: controller.signal,
      ...(options.unsafeBreak ? { breakOnPurpose: options.unsafeBreak } : {}),
    });
    const failed = result.checks.filter((c) => !c.ok);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ok: failed.length === 0, runtime: result.runtime, workspaceMode: result.workspaceMode, checks: result.checks })}\n`);
    } else {
      for (const check of result.checks) {
        process.stdout.write(`${check.ok ? "pass" : "FAIL"}  ${check.name}\n      expected: ${check.expected}\n      seen:     ${terminalSafe(check.seen)}\n`);
      }
      process.stdout.write(
        failed.length === 0
          ? `selftest: all ${result.checks.length} checks passed (runtime ${result.runtime}, workspace mode ${result.workspaceMode})\n`
          : `selftest: ${failed.length} of ${result.checks.length} checks FAILED: ${failed.map((c) => c.name).join("; ")}\n`,
      );
    }
    return failed.length === 0 ? EXIT.completed : EXIT.failed;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

async function listImagesCommand(): Promise<number> {
  const docker = await connectDocker();
  const images = await docker.listImages({ filters: { label: ["perstack.managed=true"] } });
  for (const image of images) {
    for (const tag of image.RepoTags ?? []) {
      process.stdout.write(`${tag}\t${image.Labels?.["perstack.role"] ?? ""}\t${(image.Size / 1024 ** 2).toFixed(0)} MB\n`);
    }
  }
  const resolved = await resolveBaseImages(docker, overridesFromEnv(process.env));
  for (const image of Object.values(resolved)) process.stdout.write(`base ${image.role}: ${image.ref}${image.id ? "" : " (not present locally)"}\n`);
  return 0;
}

export function buildProgram(): Command {
  const program = new Command("perstack")
    .description("Run Perstack Experts on any agent runtime inside generated Docker sandboxes")
    .option("--verbose", "print stack traces on errors")
    .hook("preAction", (cmd) => {
      verbose = Boolean(cmd.opts().verbose);
    });

  addRunOptions(
    program
      .command("run")
      .description("run an expert on a query in a fresh sandbox, or continue a job of the built-in perstack runtime")
      .argument("<expert>", "expert key in perstack.toml")
      .argument("[query]", "what to ask the expert (with -i: the answer); optional only with --resume-from"),
  )
    .option("--job-id <id>", "id of the new job (default: generated); letters, digits, '-' and '_'")
    .option("--dry-run", "print the sandbox plan as JSON and exit without touching Docker (missing variables are warnings)")
    .option("--json", "print normalized events as JSON lines instead of the live view")
    .option("--continue", "continue the most recent job in ./perstack/jobs (built-in perstack runtime only)")
    .option("--continue-job <jobId>", "continue this job from the checkpoint it stopped at")
    .option("--resume-from <checkpointId>", "with --continue-job: start from this checkpoint of the job instead")
    .option("-i, --interactive-tool-call-result", "the query is the answer to the job's pending interactive tool call")
    .addHelpText(
      "after",
      `
Exit codes: ${EXIT.completed} completed; ${EXIT.failed} stopped by an error or at maxSteps, or Docker, an image build or the
sandbox failed; ${EXIT.badInput} bad input (flags, perstack.toml, variables, job ids: nothing was started);
${EXIT.waitingForInput} waiting for input (an interactive tool call: answer with --continue-job <jobId> -i '<answer>');
${EXIT.interrupted} interrupted.

Examples:
  perstack run writer "Write a brief on RISC-V"
  perstack run writer --continue "Now shorten it to half a page"
  perstack run writer --continue-job <jobId> -i 'yes, publish it'
  perstack run writer --continue-job <jobId> --resume-from <checkpointId>`,
    )
    .action(async (expert: string, query: string | undefined, options: RunOptions) => {
      process.exitCode = await runCommand(expert, query, options);
    });

  addRunOptions(
    program
      .command("export")
      .description("write the sandbox for an expert as Dockerfiles, squid.conf and compose.yaml")
      .argument("<expert>", "expert key in perstack.toml"),
  )
    .requiredOption("--out <dir>", "directory to write (must be empty unless --force)")
    .option("--force", "write into a non-empty directory")
    .action(async (expert: string, options: RunOptions & { out: string; force?: boolean }) => {
      process.exitCode = await exportCommand(expert, options);
    });

  program
    .command("selftest")
    .description("start a real sandbox on this engine and check its isolation from inside the agent container")
    .option("--runtime <name>", "whose agent image and plan to test (default perstack)")
    .option("--json", "print one JSON object with a checks array of {name, ok, expected, seen}")
    .addOption(new Option("--workspace-mode <mode>", "test this workspace mode instead of the one a run here would get").choices(["auto", "bind", "copy"]))
    .option("--ca-cert <file>", "PEM CA certificate image builds trust (repeatable)", collect, [])
    // For the project's own tests: proves that a broken property is reported.
    .addOption(new Option("--unsafe-break <property>").choices([...BREAKABLE]).hideHelp())
    .addHelpText("after", "\nExit codes: 0 every check passed; 1 a check failed or the sandbox could not start; 2 bad input.")
    .action(async (options: { runtime?: string; json?: boolean; workspaceMode?: "auto" | "bind" | "copy"; caCert: string[]; unsafeBreak?: Breakable }) => {
      process.exitCode = await selftestCommand(options);
    });

  program
    .command("schema")
    .description("print the JSON Schema of perstack.toml (for editors: Taplo / Even Better TOML)")
    .option("--out <file>", "write it to this file instead of stdout")
    .addHelpText("after", `\nA copy ships in the package as ${SCHEMA_FILE}. In perstack.toml, a first line like\n  #:schema ./node_modules/perstack-sandbox/${SCHEMA_FILE}\nlets Taplo-based editors complete keys and show mistakes as you type.`)
    .action((options: { out?: string }) => {
      const text = perstackTomlJsonSchemaText();
      if (options.out) {
        writeFileSync(resolve(options.out), text);
        process.stderr.write(`wrote ${resolve(options.out)}\n`);
      } else {
        process.stdout.write(text);
      }
    });

  registerLogCommand(program);
  registerCompareCommand(program);
  registerJobsCommand(program);

  const images = program.command("images").description("manage the images runs are built from");
  images
    .command("bootstrap")
    .description("build the base images locally from Debian packages and the npm registry (for machines with no container registry)")
    .option("--mirror <url>", "Debian mirror (default: the first one in your apt sources)")
    .option("--force", "rebuild even when up to date")
    .option("--ca-cert <file>", "PEM CA certificate to trust (repeatable)", collect, [])
    .action(async (options: { mirror?: string; force?: boolean; caCert: string[] }) => {
      process.exitCode = await bootstrapCommand(options);
    });
  images
    .command("prune")
    .description("remove superseded agent and proxy images (keeps the newest of each unless --all)")
    .option("--all", "remove every agent and proxy image; the next run rebuilds what it needs")
    .action(async (options: { all?: boolean }) => {
      const docker = await connectDocker();
      const result = await pruneImages(docker, { all: Boolean(options.all) });
      for (const ref of result.removed) process.stdout.write(`removed ${ref}\n`);
      for (const ref of result.skipped) process.stdout.write(`in use, kept ${ref}\n`);
      process.stderr.write(`removed ${result.removed.length} image(s), kept ${result.kept.length + result.skipped.length}\n`);
    });
  images
    .command("list")
    .description("list perstack images and which base images runs use")
    .action(async () => {
      process.exitCode = await listImagesCommand();
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  // Commander's own errors (unknown option, bad value) are bad input: one line, exit code 2.
  const configure = (command: Command, path: string) => {
    command.exitOverride();
    command.configureOutput({
      outputError: (text, write) => write(`perstack: ${text.replace(/^error: /, "").trim()} (see ${path} --help)\n`),
    });
    for (const sub of command.commands) configure(sub, `${path} ${sub.name()}`);
  };
  configure(program, "perstack");
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with their own (zero) exit code.
      process.exitCode = error.exitCode === 0 ? 0 : EXIT.badInput;
      return;
    }
    if (verbose) {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    } else if (error instanceof PerstackError) {
      process.stderr.write(`perstack: ${terminalSafe(error.message)}\n`);
    } else {
      process.stderr.write(`perstack: ${terminalSafe((error as Error).message ?? String(error))} (run with --verbose for details)\n`);
    }
    process.exitCode = error instanceof PerstackError ? error.exitCode : EXIT.failed;
  }
}

await main(process.argv);
