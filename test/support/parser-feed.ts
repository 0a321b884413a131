// Drives a runtime's stream parser over lines, then ends it as the container exit would: for parser tests.
import { readFileSync } from "node:fs";
import type { PerstackEvent } from "../../src/model/perstack.js";
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

export function feedParser(parser: StreamParser, lines: string[], exitCode = 0, stderrTail = ""): PerstackEvent[] {
  return [...lines.flatMap((line) => parser.line(line)), ...parser.end({ exitCode, stderrTail })];
}

/** The lines of a recorded stream in test/fixtures/<runtime>/. */
export function fixtureLines(runtime: string, name: string): string[] {
  return readFileSync(new URL(`../fixtures/${runtime}/${name}`, import.meta.url), "utf8").split("\n").filter(Boolean);
}
