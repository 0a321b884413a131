#!/usr/bin/env node
// The built-in perstack runtime's entry point inside the agent container: reads the engine input file the host
// wrote, runs the job invocation and prints Perstack events as JSON lines on stdout. Exit code 0 whenever the
// events tell the outcome (completed or any stop); 2 when the input cannot be read at all.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { engineInputSchema, type EngineInput } from "./engine-input.js";
import { runEngineJob } from "./engine-job.js";
import { EventSink } from "./event-sink.js";

function readInput(path: string | undefined): EngineInput {
  if (!path) throw new Error("usage: main.js <engine-input.json>");
  const parsed = engineInputSchema.safeParse(JSON.parse(readFileSync(path, "utf8")));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${path}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return parsed.data;
}

async function main(): Promise<number> {
  let input: EngineInput;
  try {
    input = readInput(process.argv[2]);
  } catch (error) {
    process.stderr.write(`perstack engine: ${(error as Error).message}\n`);
    return 2;
  }
  const sink = new EventSink(input.jobId, (line) => {
    process.stdout.write(line);
  });
  await runEngineJob(input, {
    sink,
    env: process.env,
    baseSkillEntry: fileURLToPath(new URL("./base-skill/server.js", import.meta.url)),
    nodePath: process.execPath,
  });
  return 0;
}

const code = await main();
// Flush stdout before leaving: the last events are the ones that say how the run ended.
process.stdout.write("", () => process.exit(code));
