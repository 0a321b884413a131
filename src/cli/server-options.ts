// `--server`, `--token` and `--allow-http`: the options of the commands that can work on a perstack serve instead of
// this machine (run, compare, log, jobs). What they mean is decided in src/remote/server-target.ts.
import type { Command } from "commander";

export function addServerOptions(command: Command): Command {
  return command
    .option("--server <url>", "work on this perstack serve instead of here (default: $PERSTACK_SERVER)")
    .option("--token <token>", "the tenant's API token for --server; prefer $PERSTACK_TOKEN (a command line shows in process lists and shell history)")
    .option("--allow-http", "with --server: allow plain http to a host other than this machine (the token and workspace travel unencrypted)");
}
