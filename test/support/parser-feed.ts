// Drives a runtime's stream parser over lines, then ends it as the container exit would: for parser tests.
import { readFileSync } from "node:fs";
import { expandEvent, type MessagesResolver } from "../../src/model/event-messages.js";
import type { ExpandedEvent, PerstackEvent } from "../../src/model/perstack.js";
import type { RecorderContext } from "../../src/runtimes/run-recorder.js";
import type { StreamParser } from "../../src/runtimes/types.js";

export function recorderContext(runtime: string): RecorderContext {
  let n = 0;
  return {
    jobId: "j",
    runId: "r",
    expert: { key: "e", name: "e", version: "1" },
    instruction: "i",
    query: "q",
    runtime,
    metadata: {},
    newId: () => `id${++n}`,
    now: () => 1,
  };
}

/** The events as the collector records them: checkpoints by reference. */
export function feedParserRecorded(parser: StreamParser, lines: string[], exitCode = 0, stderrTail = ""): PerstackEvent[] {
  return [...lines.flatMap((line) => parser.line(line)), ...parser.end({ exitCode, stderrTail })];
}

/** The events in Perstack's shape: the messages their references name, from the parser's logs. */
export function feedParser(parser: StreamParser, lines: string[], exitCode = 0, stderrTail = ""): ExpandedEvent[] {
  return expandEvents(parser, feedParserRecorded(parser, lines, exitCode, stderrTail));
}

export function expandEvents(parser: StreamParser, events: PerstackEvent[]): ExpandedEvent[] {
  return events.map((event) => expandEvent(event, parserMessages(parser)));
}

/** Resolves references against the parser's logs, as the collector does. */
export function parserMessages(parser: StreamParser): MessagesResolver {
  return (runId, ref) => {
    const log = parser.history(runId);
    if (!log || ref.count > log.length) throw new Error(`run ${runId} has no ${ref.count} messages`);
    return log.head(ref.count);
  };
}

/** The lines of a recorded stream in test/fixtures/<runtime>/. */
export function fixtureLines(runtime: string, name: string): string[] {
  return readFileSync(new URL(`../fixtures/${runtime}/${name}`, import.meta.url), "utf8").split("\n").filter(Boolean);
}
