// A real `perstack serve` for e2e tests: tenants added with `perstack tenants`, the server started as a child process
// on a free port, and what it said kept for a failing test's report.
import { execa, type ResultPromise } from "execa";
import { CLI, cliEnv } from "./cli.js";

export interface TestServer {
  url: string;
  child: ResultPromise;
  /** What the server wrote to stderr so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface ServerDirs {
  data: string;
  cwd: string;
}

/** `perstack <args> --data <data>` in `cwd`, bounded to a minute. */
export function serverCli(dirs: ServerDirs, args: string[], input?: string) {
  return execa(process.execPath, [CLI, ...args, "--data", dirs.data], { cwd: dirs.cwd, env: cliEnv(), extendEnv: false, reject: false, all: true, ...(input !== undefined ? { input } : {}), timeout: 60_000 });
}

/** Adds a tenant with the fake provider key as its secret; its token. */
export async function addTenant(dirs: ServerDirs, name: string, secrets: Record<string, string> = { ANTHROPIC_API_KEY: `sk-fake-${name}` }): Promise<string> {
  const added = await serverCli(dirs, ["tenants", "add", name, "--json"]);
  if (added.exitCode !== 0) throw new Error(`tenants add ${name}: ${added.all}`);
  for (const [key, value] of Object.entries(secrets)) {
    const set = await serverCli(dirs, ["tenants", "secret", "set", name, key], `${value}\n`);
    if (set.exitCode !== 0) throw new Error(`tenants secret set ${name} ${key}: ${set.all}`);
  }
  return (JSON.parse(added.stdout) as { token: string }).token;
}

/** Starts `perstack serve` on a free port; `allowUpstream` is the fake model's host[:port] (a private address). */
export async function startServer(dirs: ServerDirs, options: { allowUpstream: string; args?: string[] }): Promise<TestServer> {
  const child = execa(process.execPath, [CLI, "serve", "--data", dirs.data, "--port", "0", "--allow-private-upstream", options.allowUpstream, ...(options.args ?? ["--max-concurrent", "2"])], {
    cwd: dirs.cwd,
    env: cliEnv(),
    extendEnv: false,
    reject: false,
    all: true,
  });
  let log = "";
  child.stderr!.on("data", (chunk: Buffer) => (log += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let seen = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /listening on (https?:\/\/[^\s]+)/.exec(seen);
      if (match) resolve(match[1]!);
    });
    void child.then((result) => reject(new Error(`serve ended: ${result.all}`)));
  });
  return {
    url,
    child,
    log: () => log,
    async stop() {
      child.kill("SIGKILL");
      await child;
    },
  };
}
