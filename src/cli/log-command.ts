// `perstack log`: Perstack's options for reading a job's history, on jobs of every runtime.
import { Command, InvalidArgumentError } from "commander";
import { takeOverOrphansIn } from "./orphans-first.js";
import { InvalidOptionError } from "../errors.js";
import { DEFAULT_TAKE, selectedTypes, type Preset } from "../history/event-selection.js";
import { parseFilterExpression } from "../history/filter-expression.js";
import { CheckpointFileMessages } from "../history/checkpoint-messages.js";
import { readJobLog, type JobLog, type LogQuery } from "../history/job-log.js";
import { noJobsMessage } from "../history/job-list.js";
import { logJsonChunks, formatLogText } from "../history/log-format.js";
import type { LoggedEvent } from "../history/logged-event.js";
import { expandRecord } from "../model/event-messages.js";
import { parseStepFilter } from "../history/step-filter.js";
import { jobsDir } from "../storage/job-reader.js";
import { perstackStorageDir } from "../storage/storage-dir.js";
import { processIo, type CommandIo } from "./command-io.js";
import { addServerOptions } from "./server-options.js";
import { serverTarget, type ServerFlags } from "../remote/server-target.js";
import { jsonTerminalSafe, terminalSafe } from "./terminal-text.js";

export interface LogCommandOptions {
  job?: string;
  run?: string;
  checkpoint?: string;
  step?: string;
  type?: string;
  errors?: boolean;
  tools?: boolean;
  delegations?: boolean;
  filter?: string;
  json?: boolean;
  pretty?: boolean;
  verbose?: boolean;
  take?: number;
  offset?: number;
  context?: number;
  messages?: boolean;
  summary?: boolean;
}

function parseCount(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError("give a whole number, 0 or more");
  return n;
}

/** The flags as a query; a bad --step, --type or --filter is one InvalidOptionError naming the flag and value. */
export function logQueryFromOptions(options: LogCommandOptions): LogQuery {
  const presets = (["errors", "tools", "delegations"] as const).filter((preset: Preset) => options[preset]);
  const types = selectedTypes(options.type, presets);
  return {
    ...(options.job !== undefined ? { jobId: options.job } : {}),
    ...(options.run !== undefined ? { runId: options.run } : {}),
    ...(options.checkpoint !== undefined ? { checkpointId: options.checkpoint } : {}),
    selector: {
      ...(options.step !== undefined ? { steps: parseStepFilter(options.step) } : {}),
      ...(types ? { types } : {}),
      ...(options.filter !== undefined ? { filter: parseFilterExpression(options.filter) } : {}),
    },
    paging: { take: options.take ?? DEFAULT_TAKE, offset: options.offset ?? 0, context: options.context ?? 0 },
    ...(options.messages ? { messages: true } : {}),
  };
}

export async function runLogCommand(options: LogCommandOptions, io: CommandIo = processIo()): Promise<number> {
  if (options.messages && options.summary) throw new InvalidOptionError("--messages and --summary are two views of a job; give one of them");
  const query = logQueryFromOptions(options);
  const perstackDir = perstackStorageDir(io.cwd, io.env);
  const log = await readJobLog(perstackDir, query);
  if (!log) {
    io.stderr(`perstack: ${terminalSafe(noJobsMessage(jobsDir(perstackDir)))}\n`);
    return 0;
  }
  printJobLog(log, options, perstackDir, io);
  return 0;
}

/** Prints a job's log as the flags ask; messages by reference are read back from `perstackDir`'s checkpoint files. */
export function printJobLog(log: JobLog, options: LogCommandOptions, perstackDir: string, io: CommandIo): void {
  for (const warning of log.warnings) io.stderr(`perstack: warning: ${terminalSafe(warning)}\n`);
  if (options.json || options.pretty) {
    // Perstack's shape: each event's messages read back from the checkpoint files its references name, one event at
    // a time, so a long job's output never sits in memory whole.
    const files = new CheckpointFileMessages(perstackDir, log.job.id);
    const expand = (event: LoggedEvent) => expandRecord(event, files.resolve) as LoggedEvent;
    for (const chunk of logJsonChunks(log, Boolean(options.pretty), expand)) io.stdout(jsonTerminalSafe(chunk));
    io.stdout("\n");
  } else {
    io.stdout(`${terminalSafe(formatLogText(log, { verbose: options.verbose, summary: options.summary, messages: options.messages }))}\n`);
  }
}

export function registerLogCommand(program: Command): void {
  addServerOptions(program.command("log"))
    .description("show a job's events, a checkpoint's messages or a summary (default: the latest job)")
    .option("--job <jobId>", "the job to show (default: the latest; list them with `perstack jobs`)")
    .option("--run <runId>", "only this run's events (its job is found when --job is not given)")
    .option("--checkpoint <checkpointId>", "this checkpoint, and the events of its run")
    .option("--step <step>", "only these steps: 5, >5, >=5, <5, <=5 or 1-10")
    .option("--type <eventType>", "only events of this type (several: comma-separated)")
    .option("--errors", "only stopRunByError, retry and sandboxWarning events")
    .option("--tools", "only callTools, resolveToolResults and callInteractiveTool events")
    .option("--delegations", "only callDelegate and stopRunByDelegate events")
    .option("--filter <expression>", `only events where .field.path op value holds, e.g. '.toolCalls[].toolName == "exec"'`)
    .option("--json", "print one JSON object: job, events, summary, checkpoint(s), paging counts")
    .option("--pretty", "like --json, indented")
    .option("--verbose", "full event details: tool arguments, results, texts and errors")
    .option("--take <n>", `matching events to show (default ${DEFAULT_TAKE}; 0 for all)`, parseCount)
    .option("--offset <n>", "matching events to skip first (default 0)", parseCount)
    .option("--context <n>", "also show n events before and after each one shown", parseCount)
    .option("--messages", "show a checkpoint's message history (--checkpoint's, else the job's latest)")
    .option("--summary", "show status, steps, tokens, duration, tool calls, errors and blocked egress")
    .addHelpText(
      "after",
      `
--type and the presets (--errors, --tools, --delegations) add up; --run, --checkpoint, --step and --filter narrow.
Filter values: true, false, numbers, "quoted" or 'quoted' text, or bare text; [] means any element of an array.

Examples:
  perstack log
  perstack log --job <jobId> --summary
  perstack log --errors --context 2
  perstack log --filter '.toolCalls[].toolName == "readTextFile"' --verbose
  perstack log --step 3-5 --json
  perstack log --job <jobId> --checkpoint <checkpointId> --messages
  PERSTACK_TOKEN=pst_… perstack log --server https://perstack.example.com --job <jobId> --summary`,
    )
    .action(async (options: LogCommandOptions & ServerFlags, command: Command) => {
      // The program's own --verbose (stack traces) takes the flag before this command sees it: read both.
      const verbose = Boolean(command.optsWithGlobals<{ verbose?: boolean }>().verbose);
      const server = serverTarget(options, process.env);
      if (server) {
        const { runRemoteLogCommand } = await import("../remote/remote-log.js");
        process.exitCode = await runRemoteLogCommand({ ...options, verbose }, server, processIo());
        return;
      }
      await takeOverOrphansIn(process.cwd(), process.env);
      process.exitCode = await runLogCommand({ ...options, verbose });
    });
}
