#!/usr/bin/env node
// The built-in perstack runtime's entry point inside the agent container: reads the engine input file the host
// wrote, runs the job invocation and prints Perstack events as JSON lines on stdout. Exit code 0 whenever the
// events tell the outcome (completed or any stop); 2 when the input cannot be read at all.
//
// Usage: main.js <engine-input.json> [-- <query>]. A query after `--` replaces the input's query: exported
// sandboxes (perstack export) fill it in from ${PERSTACK_QUERY} on the command line, as for the CLI runtimes.
import { readFileSync } from "node:fs";
import { engineInputSchema, type EngineInput } from "./engine-input.js";
import { runEngineJob } from "./engine-job.js";
import { EventSink } from "./event-sink.js";

function readInput(argv: string[]): EngineInput {
  const [path, separator, query] = argv;
  if (!path || (separator !== undefined && (separator !== "--" || query === undefined))) {
    throw new Error("usage: main.js <engine-input.json> [-- <query>]");
  }
  const parsed = engineInputSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  const input = parsed.data;
  if (query !== undefined && (input.start.kind === "query" || input.start.kind === "continue")) {
    return { ...input, start: { ...input.start, query } };
  }
  return input;
}

/**
 * The host starts this container while the proxy and the gateway are still starting and sends one line on stdin once
 * they are ready, then closes it. The engine waits for that line (or the end of stdin: docker-compose and a plain
 * docker run give none) only before it needs the network, so its own start overlaps the sidecars'. The entrypoint
 * leaves the line to the engine when PERSTACK_START_GATE is "engine" (runtimes/perstack.ts).
 */
function startGate(): Promise<void> {
  return new Promise((resolve) => {
    const open = () => {
      process.stdin.off("data", onData);
      process.stdin.pause();
      resolve();
    };
    const onData = (chunk: Buffer) => {
      if (chunk.includes(0x0a)) open();
    };
    process.stdin.on("data", onData);
    process.stdin.once("end", open);
    process.stdin.once("error", open);
  });
}

async function main(): Promise<number> {
  let input: EngineInput;
  try {
    input = readInput(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`perstack engine: ${(error as Error).message}\n`);
    return 2;
  }
  const sink = new EventSink(input.jobId, (line) => {
    process.stdout.write(line);
  });
  await runEngineJob(input, {
    sink,
    networkReady: startGate(),
    env: process.env,
  });
  return 0;
}

const code = await main();
// Flush stdout before leaving: the last events are the ones that say how the run ended.
process.stdout.write("", () => process.exit(code));
