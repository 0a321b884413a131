// `perstack compare`: commander wiring. The work is in compare-run.ts (loaded when the command runs) and src/compare.
import { Option, type Command } from "commander";
import { addRunOptions, parseDuration, parsePositiveInt, type RunOptions } from "./run-options.js";
import { addServerOptions } from "./server-options.js";
import { serverTarget } from "../remote/server-target.js";

export interface CompareOptions extends RunOptions {
  runtimes?: string;
  repeat: number;
  concurrency?: number;
  check?: string;
  checkTimeout: number;
  out?: string;
  from?: string;
}

export function registerCompareCommand(program: Command): void {
  addServerOptions(addRunOptions(
    program
      .command("compare")
      .description("run one expert on several runtimes, each on its own copy of the workspace, and compare them side by side")
      .argument("[expert]", "expert key in perstack.toml")
      .argument("[query]", "what to ask the expert"),
  ))
    .option("--runtimes <list>", "runtimes to compare, comma-separated: perstack, claude-code, gemini, codex, cursor")
    .addOption(new Option("--repeat <n>", "run each runtime n times (medians and spreads in the report)").argParser(parsePositiveInt).default(1))
    .addOption(new Option("--concurrency <k>", "runs at once (default: the number of runs, at most 4)").argParser(parsePositiveInt))
    .option("--check <command>", "a command run with sh -c in a fresh sandbox (no network) on each run's final workspace; exit 0 passes")
    .addOption(new Option("--check-timeout <time>", "how long a check may take, e.g. 90s or 10m").argParser(parseDuration).default(600_000, "10m"))
    .option("--out <dir>", "where comparison.json, report.html and the runs' workspaces go (default perstack/comparisons/<id>)")
    .option("--json", "print comparison.json instead of the table")
    .option("--from <jobIds>", "build the comparison from jobs already recorded, comma-separated (no runs)")
    .option("--job-id <id>", "(not for compare: each run is its own job)")
    .addHelpText(
      "after",
      `
Exit codes: 0 the comparison was produced, whatever the agents did; 1 it could not be (Docker, the workspace copy);
2 bad input (flags, perstack.toml, job ids: nothing was started); 130 interrupted.

--model takes one model for every runtime, or runtime=model pairs: --model claude-code=claude-sonnet-4-5,gemini=gemini-2.5-pro.

Examples:
  perstack compare writer "Write a brief on RISC-V" --runtimes perstack,claude-code,gemini,codex
  perstack compare fixer "Fix the failing test" --runtimes claude-code,codex --repeat 3 --check "npm test"
  perstack compare --from <jobId>,<jobId>
  PERSTACK_TOKEN=pst_… perstack compare writer "Write a brief" --runtimes perstack,claude-code --server https://perstack.example.com`,
    )
    .action(async (expert: string | undefined, query: string | undefined, options: CompareOptions) => {
      const server = serverTarget(options, process.env);
      if (server) {
        const { compareRemote } = await import("../remote/remote-compare.js");
        process.exitCode = await compareRemote(expert, query, options, server);
        return;
      }
      const { compareCommand } = await import("./compare-run.js");
      process.exitCode = await compareCommand(expert, query, options);
    });
}
