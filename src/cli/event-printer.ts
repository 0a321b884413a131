// How `perstack run` prints a run's events as they come, whether the run is here or on a server (--server): with
// --json each event in Perstack's shape as one JSON line on stdout; else the live view's lines (live-view.ts), the
// answer of the run this invocation started on stdout and everything else on stderr.
import type { CheckpointRef, PerstackEvent } from "../model/perstack.js";
import { formatEvent } from "./live-view.js";
import { jsonTerminalSafe, terminalSafe } from "./terminal-text.js";

export interface RunEventPrinter {
  /** `expanded`: the event in Perstack's shape, messages in place (given, and asked for, with --json only). */
  print(event: PerstackEvent, expanded?: () => unknown): void;
  /** Delegated runs that stopped to ask the user: their calls are the questions to show. */
  readonly askers: CheckpointRef[];
}

export interface RunEventPrinterOptions {
  json?: boolean;
  /** Whether a run is the one this invocation started (not a delegate's). */
  isRoot(runId: string): boolean;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

export function runEventPrinter(options: RunEventPrinterOptions): RunEventPrinter {
  const stdout = options.stdout ?? ((text: string) => void process.stdout.write(text));
  const stderr = options.stderr ?? ((text: string) => void process.stderr.write(text));
  const askers: CheckpointRef[] = [];
  return {
    askers,
    print(event, expanded) {
      const root = options.isRoot(event.runId);
      if (event.type === "stopRunByInteractiveTool" && !root) askers.push(event.checkpoint);
      if (options.json) {
        // Perstack's shape for the tools that read it: messages in place, as events.jsonl no longer has them. The
        // characters a terminal would act on are written as \u escapes: the same JSON value, safe to look at.
        if (!expanded) throw new Error("--json needs events in Perstack's shape: the run was started without expandEvents");
        stdout(`${jsonTerminalSafe(JSON.stringify(expanded()))}\n`);
        return;
      }
      const line = formatEvent(event, { root });
      if (line === undefined) return;
      // Only the answer of the run this invocation started is the command's output; delegates' go to the log.
      const toStdout = event.type === "completeRun" && root;
      (toStdout ? stdout : stderr)(`${terminalSafe(line)}\n`);
    },
  };
}
