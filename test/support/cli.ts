// Runs the built CLI (dist/) the way a user does, in a workspace directory.
import { chownSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";

export const CLI = fileURLToPath(new URL("../../dist/src/cli/main.js", import.meta.url));

/** A fresh workspace holding perstack.toml, writable by the agent's default uid when the tests run as root. */
export function makeWorkspace(toml: string, prefix = "perstack-e2e-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, "perstack.toml"), toml);
  if (process.getuid?.() === 0) chownSync(dir, 1000, 1000);
  return dir;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** The environment a run sees: the test process's, minus anything named like a provider key. */
export function cliEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(env)) if (/API_KEY$/.test(name)) delete env[name];
  return { ...env, ...extra };
}

export function runCli(args: string[], options: CliOptions): ResultPromise<{ reject: false; all: true }> {
  return execa(process.execPath, [CLI, ...args], {
    cwd: options.cwd,
    env: cliEnv(options.env),
    extendEnv: false,
    reject: false,
    all: true,
    timeout: options.timeoutMs ?? 300_000,
  });
}

export interface JobOnDisk {
  jobId: string;
  job: { status: string; usage: { totalTokens: number; inputTokens: number; outputTokens: number }; totalSteps: number };
  runIds: string[];
  events: Array<{ type: string; [key: string]: unknown }>;
  checkpoints: Array<{ id: string; status: string; stepNumber: number; messages: unknown[] }>;
  raw: string;
}

export function readJobs(workspace: string): JobOnDisk[] {
  const jobsDir = join(workspace, "perstack", "jobs");
  let ids: string[];
  try {
    ids = readdirSync(jobsDir).sort();
  } catch {
    return [];
  }
  return ids.map((jobId) => {
    const dir = join(jobsDir, jobId);
    const runIds = readdirSync(join(dir, "runs"));
    const runDir = join(dir, "runs", runIds[0]!);
    return {
      jobId,
      job: JSON.parse(readFileSync(join(dir, "job.json"), "utf8")),
      runIds,
      events: readFileSync(join(runDir, "events.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)),
      checkpoints: readdirSync(join(dir, "checkpoints")).map((f) => JSON.parse(readFileSync(join(dir, "checkpoints", f), "utf8"))),
      raw: readFileSync(join(runDir, "raw.log"), "utf8"),
    };
  });
}
