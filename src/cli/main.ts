#!/usr/bin/env node
// commander wiring: parse flags, call the stages, print, choose the exit code. No logic beyond that.
//
// Each command's work is imported when that command runs: the planner, the Docker client and the compare machinery
// take longer to load than `perstack --help`, `log` or `jobs` take to run (test/unit/cli/lazy-loading.test.ts).
// First: dockerode's SSH and gRPC clients then load only when used, whichever command loads dockerode later.
import "../sandbox/docker-extras-lazy.js";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { PerstackError } from "../errors.js";
import { BREAKABLE, type Breakable } from "../job/selftest-breaks.js";
import { SCHEMA_FILE } from "../config/schema-file.js";
import { explainDockerError, isDockerFailure } from "../sandbox/docker-errors.js";
import { DEFAULT_SERVER_DATA_DIR } from "../server/server-db.js";
import { registerCompareCommand } from "./compare-command.js";
import { exitWhenFlushed } from "./command-io.js";
import { RUN_EXIT } from "./exit-codes.js";
import { registerJobsCommand } from "./jobs-command.js";
import { addRunOptions, collect, parsePositiveInt, parseUsd, type RunOptions } from "./run-options.js";
import { registerLogCommand } from "./log-command.js";
import { addServerOptions } from "./server-options.js";
import { serverTarget } from "../remote/server-target.js";
import { terminalSafe } from "./terminal-text.js";

let verbose = false;

export function buildProgram(): Command {
  const program = new Command("perstack")
    .description("Run Perstack Experts on any agent runtime inside generated Docker sandboxes")
    .option("--verbose", "print stack traces on errors")
    .hook("preAction", (cmd) => {
      verbose = Boolean(cmd.opts().verbose);
    });

  addServerOptions(addRunOptions(
    program
      .command("run")
      .description("run an expert on a query in a fresh sandbox, or continue a job of the built-in perstack runtime")
      .argument("<expert>", "expert key in perstack.toml")
      .argument("[query]", "what to ask the expert (with -i: the answer); optional only with --resume-from"),
  ))
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
Exit codes: ${RUN_EXIT.completed} completed; ${RUN_EXIT.failed} stopped by an error or at maxSteps, or Docker, an image build or the
sandbox failed; ${RUN_EXIT.badInput} bad input (flags, perstack.toml, variables, job ids: nothing was started);
${RUN_EXIT.waitingForInput} waiting for input (an interactive tool call: answer with --continue-job <jobId> -i '<answer>');
${RUN_EXIT.interrupted} interrupted.

Examples:
  perstack run writer "Write a brief on RISC-V"
  perstack run writer --continue "Now shorten it to half a page"
  perstack run writer --continue-job <jobId> -i 'yes, publish it'
  perstack run writer --continue-job <jobId> --resume-from <checkpointId>
  PERSTACK_TOKEN=pst_… perstack run writer "Write a brief" --server https://perstack.example.com

With --server (or $PERSTACK_SERVER) the run goes to that perstack serve: the workspace is uploaded (without perstack/
and the env files), the events and exit codes are a local run's, and the run's changes are applied here when it ends.`,
    )
    .action(async (expert: string, query: string | undefined, options: RunOptions) => {
      const server = serverTarget(options, process.env);
      if (server) {
        const { runRemote } = await import("../remote/remote-run.js");
        await exitWhenFlushed(await runRemote(expert, query, options, server));
      }
      const { runCommand } = await import("./run-command.js");
      // The run is recorded, printed, and its sandbox handed to its teardown process: nothing is left to wait for.
      await exitWhenFlushed(await runCommand(expert, query, options));
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
      const { exportCommand } = await import("./run-command.js");
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
      const { selftestCommand } = await import("./selftest-command.js");
      process.exitCode = await selftestCommand(options);
    });

  program
    .command("schema")
    .description("print the JSON Schema of perstack.toml (for editors: Taplo / Even Better TOML)")
    .option("--out <file>", "write it to this file instead of stdout")
    .addHelpText("after", `\nA copy ships in the package as ${SCHEMA_FILE}. In perstack.toml, a first line like\n  #:schema ./node_modules/perstack-sandbox/${SCHEMA_FILE}\nlets Taplo-based editors complete keys and show mistakes as you type.`)
    .action(async (options: { out?: string }) => {
      const { perstackTomlJsonSchemaText } = await import("../config/json-schema.js");
      const text = perstackTomlJsonSchemaText();
      if (options.out) {
        writeFileSync(resolve(options.out), text);
        process.stderr.write(`wrote ${resolve(options.out)}\n`);
      } else {
        process.stdout.write(text);
      }
    });

  program
    .command("attach")
    .description("take over a job whose perstack process stopped mid-run: follow its agent if it still runs, then record how it ended")
    .argument("<jobId>", "the job (perstack jobs lists them)")
    .option("--json", "print the events collected from now on as JSON lines instead of the live view")
    .addHelpText(
      "after",
      `
Ctrl-C detaches and leaves the agent running. Exit codes as for run: ${RUN_EXIT.completed} completed, ${RUN_EXIT.failed} stopped by an error,
${RUN_EXIT.badInput} bad input (no such job, or it is not running, or its perstack process is alive), ${RUN_EXIT.waitingForInput} waiting for input,
${RUN_EXIT.interrupted} detached.

Examples:
  perstack attach 0d3f9a2k1b2c3d4e5f6a`,
    )
    .action(async (jobId: string, options: { json?: boolean }) => {
      const { attachCommand } = await import("./attach-command.js");
      process.exitCode = await attachCommand(jobId, options);
    });

  program
    .command("serve")
    .description("serve the run API (and /openapi.json) for many tenants: runs queued fairly, on this machine's Docker engine")
    .option("--host <host>", "address to listen on (loopback by default; put a TLS reverse proxy in front for others)", "127.0.0.1")
    .option("--port <port>", "port to listen on (0: any free one, printed at start)", "8080")
    .option("--data <dir>", "the server's state: database, key, tenants' jobs and workspaces", DEFAULT_SERVER_DATA_DIR)
    .option("--max-concurrent <n>", "runs going at once, all tenants together", "4")
    .option("--max-submissions-per-minute <n>", "submissions (runs, continuations, comparisons) one tenant may make a minute; more get 429", "120")
    .option("--tls-cert <file>", "serve HTTPS with this PEM certificate (with --tls-key)")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .option("--allow-private-upstream <host[:port]>", "let tenants' configs use this upstream though it is private, loopback or plain http (repeatable)", collect, [])
    .addHelpText(
      "after",
      `
Examples:
  perstack tenants add team-a --max-concurrent 2
  perstack serve --port 8080
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/runs`,
    )
    .action(async (options: { host: string; port: string; data: string; maxConcurrent: string; maxSubmissionsPerMinute: string; tlsCert?: string; tlsKey?: string; allowPrivateUpstream: string[] }) => {
      const { serveCommand } = await import("./serve-command.js");
      await serveCommand(options);
    });

  program
    .command("ui")
    .description("open the web console over this directory's perstack/jobs: read-only, on loopback, for you alone")
    .option("--port <port>", "port to listen on (0: any free one)", "0")
    .addHelpText("after", "\nIt prints the URL to open, with a token made for this start.\n\nExamples:\n  perstack ui\n  perstack ui --port 8090")
    .action(async (options: { port: string }) => {
      const { uiCommand } = await import("./ui-command.js");
      await uiCommand(options);
    });

  // `perstack tenants`: the tenants of `perstack serve`, kept in the same --data directory.
  const dataOption = () => new Option("--data <dir>", "the server's data directory (as for perstack serve)").default(DEFAULT_SERVER_DATA_DIR);
  const tenants = program
    .command("tenants")
    .description("manage the tenants of perstack serve: API tokens, limits and provider keys")
    .addHelpText("after", "\nExamples:\n  perstack tenants add team-a --max-concurrent 2 --max-cost-per-day 20\n  perstack tenants list\n  printf '%s' \"$ANTHROPIC_API_KEY\" | perstack tenants secret set team-a ANTHROPIC_API_KEY");
  tenants
    .command("add")
    .description("add a tenant and print its API token (shown this once only)")
    .argument("<name>", "letters, digits, '-' and '_', at most 64")
    .addOption(new Option("--max-concurrent <n>", "runs of this tenant executing at once (default: only the machine-wide limit)").argParser(parsePositiveInt))
    .addOption(new Option("--max-cost-per-day <usd>", "model spend allowed per day, in US dollars (default: no budget)").argParser(parseUsd))
    .option("--runtimes <list>", "runtimes its runs may use, comma-separated (default: all)")
    .option("--json", 'print {"name", "token"}')
    .addOption(dataOption())
    .addHelpText("after", "\nExamples:\n  perstack tenants add team-a\n  perstack tenants add team-b --max-concurrent 2 --max-cost-per-day 25 --runtimes perstack,claude-code\n  TOKEN=$(perstack tenants add team-c --data /srv/perstack)")
    .action(async (name: string, options: { data: string; maxConcurrent?: number; maxCostPerDay?: number; runtimes?: string; json?: boolean }) => {
      const { tenantsAddCommand } = await import("./tenants-command.js");
      process.exitCode = await tenantsAddCommand(name, options);
    });
  tenants
    .command("list")
    .description("list the tenants with their limits and the names of their secrets (never tokens or values)")
    .option("--json", "print a JSON array of {name, maxConcurrent, maxCostPerDay, runtimes, secrets, createdAt}; null: no limit")
    .addOption(dataOption())
    .addHelpText("after", "\nExamples:\n  perstack tenants list\n  perstack tenants list --json --data /srv/perstack")
    .action(async (options: { data: string; json?: boolean }) => {
      const { tenantsListCommand } = await import("./tenants-command.js");
      process.exitCode = tenantsListCommand(options);
    });
  tenants
    .command("rotate")
    .description("give a tenant a new API token; the old one stops working at once")
    .argument("<name>", "the tenant")
    .option("--json", 'print {"name", "token"}')
    .addOption(dataOption())
    .addHelpText("after", "\nExamples:\n  perstack tenants rotate team-a\n  perstack tenants rotate team-a --json")
    .action(async (name: string, options: { data: string; json?: boolean }) => {
      const { tenantsRotateCommand } = await import("./tenants-command.js");
      process.exitCode = await tenantsRotateCommand(name, options);
    });
  tenants
    .command("remove")
    .description("remove a tenant and its secrets; its token stops working at once")
    .argument("<name>", "the tenant")
    .addOption(dataOption())
    .addHelpText("after", "\nExamples:\n  perstack tenants remove team-a")
    .action(async (name: string, options: { data: string }) => {
      const { tenantsRemoveCommand } = await import("./tenants-command.js");
      process.exitCode = tenantsRemoveCommand(name, options);
    });
  const secret = tenants
    .command("secret")
    .description("a tenant's provider keys, stored encrypted with <data>/server.key and given only to its runs")
    .addHelpText("after", "\nExamples:\n  printf '%s' \"$ANTHROPIC_API_KEY\" | perstack tenants secret set team-a ANTHROPIC_API_KEY\n  perstack tenants secret remove team-a ANTHROPIC_API_KEY");
  secret
    .command("set")
    .description("set (or replace) a tenant's secret; the value is read from stdin, one trailing newline dropped")
    .argument("<name>", "the tenant")
    .argument("<VAR>", "the environment variable its runs see, e.g. ANTHROPIC_API_KEY")
    .addOption(dataOption())
    .addHelpText("after", "\nExamples:\n  printf '%s' \"$ANTHROPIC_API_KEY\" | perstack tenants secret set team-a ANTHROPIC_API_KEY\n  perstack tenants secret set team-a OPENAI_API_KEY < openai.key")
    .action(async (name: string, variable: string, options: { data: string }) => {
      const { tenantsSecretSetCommand } = await import("./tenants-command.js");
      process.exitCode = await tenantsSecretSetCommand(name, variable, options);
    });
  secret
    .command("remove")
    .description("remove a tenant's secret")
    .argument("<name>", "the tenant")
    .argument("<VAR>", "the secret's name")
    .addOption(dataOption())
    .addHelpText("after", "\nExamples:\n  perstack tenants secret remove team-a ANTHROPIC_API_KEY")
    .action(async (name: string, variable: string, options: { data: string }) => {
      const { tenantsSecretRemoveCommand } = await import("./tenants-command.js");
      process.exitCode = tenantsSecretRemoveCommand(name, variable, options);
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
      const { bootstrapCommand } = await import("./images-command.js");
      process.exitCode = await bootstrapCommand(options);
    });
  images
    .command("prune")
    .description("remove superseded agent and proxy images (keeps the newest of each unless --all)")
    .option("--all", "remove every agent and proxy image; the next run rebuilds what it needs")
    .action(async (options: { all?: boolean }) => {
      const { pruneImagesCommand } = await import("./images-command.js");
      process.exitCode = await pruneImagesCommand(options);
    });
  images
    .command("list")
    .description("list perstack images and which base images runs use")
    .action(async () => {
      const { listImagesCommand } = await import("./images-command.js");
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
  } catch (caught) {
    if (caught instanceof CommanderError) {
      // --help and --version end here too, with their own (zero) exit code.
      process.exitCode = caught.exitCode === 0 ? 0 : RUN_EXIT.badInput;
      return;
    }
    // The last net for a Docker failure no command translated: the user gets what happened, not the engine's words.
    const error = isDockerFailure(caught) ? explainDockerError(caught, "talking to the Docker engine") : caught;
    if (verbose) {
      process.stderr.write(`${(caught as Error).stack ?? String(caught)}\n`);
    } else if (error instanceof PerstackError) {
      process.stderr.write(`perstack: ${terminalSafe(error.message)}\n`);
    } else {
      process.stderr.write(`perstack: ${terminalSafe((error as Error).message ?? String(error))} (run with --verbose for details)\n`);
    }
    process.exitCode = error instanceof PerstackError ? error.exitCode : RUN_EXIT.failed;
  }
}

await main(process.argv);
