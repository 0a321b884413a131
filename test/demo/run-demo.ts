// `npm run demo`: the whole product on one machine with no API key. A demo expert runs on the built-in perstack
// runtime (or, with `npm run demo -- claude-code`, on the real Claude Code CLI) inside its sandbox; the model is
// the scripted fake Anthropic server from test/, started as a container and reached through the run's proxy like
// a local model server. Run after `npm run build`.
//
// demo.mjs checks the Node version and runs this file with Node's type stripping, so it imports the built product
// from dist/ and uses erasable TypeScript only.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { execa } from "execa";
import { ensureBaseImages } from "../support/ensure-base-images.ts";
import { buildFakeModelImage } from "../support/fake-model-image.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist/src/cli/entry.js");
const FAKE_IMAGE = "perstack-demo/fake-models:latest";
const WORKSPACE = join(process.cwd(), "perstack-demo");

const say = (message: string) => process.stderr.write(`[demo] ${message}\n`);

async function startFake(docker: Docker): Promise<{ container: Docker.Container; port: number }> {
  const container = await docker.createContainer({
    Image: FAKE_IMAGE,
    Labels: { "perstack.demo": "fake-models" },
    ExposedPorts: { "8080/tcp": {} },
    HostConfig: { PortBindings: { "8080/tcp": [{ HostPort: "" }] }, AutoRemove: true },
  });
  await container.start();
  const info = await container.inspect();
  const port = Number(info.NetworkSettings.Ports["8080/tcp"]?.[0]?.HostPort);
  for (let i = 0; i < 50; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return { container, port };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the fake model server did not start");
}

type DemoRuntime = "perstack" | "claude-code";
const RUNTIMES: readonly DemoRuntime[] = ["perstack", "claude-code"];

const REPORT_FILE = join(WORKSPACE, "report.md");
const REPORT_TITLE = "# Sandbox report";
const REPORT_FIRST_POINT = "- Ran inside a per-run container as a non-root user.";

/** What this run's agent is scripted to write. The stamp tells this run's report from an earlier one. */
function reportFor(runtime: DemoRuntime, stamp: string): string {
  return (
    `${REPORT_TITLE}\n\n${REPORT_FIRST_POINT}\n- Reached the model only through the run's proxy.\n` +
    "- Called an MCP skill that was installed into the image at build time.\n" +
    `- Written by the demo run of ${stamp} on the ${runtime} runtime.\n`
  );
}

/** What the fake model answers, turn by turn, in each runtime's own tool names. */
function scriptFor(runtime: DemoRuntime, report: string): { steps: unknown[] } {
  const lookAround = "echo \"user $(id -u), workspace $(pwd)\"; ls -A /workspace";
  const echo = "hello from an MCP skill inside the sandbox";
  const done = { text: "Done. I wrote report.md in the workspace: it summarises how this run was sandboxed." };
  if (runtime === "perstack") {
    return {
      steps: [
        { text: "Let me look at the sandbox I am running in.", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", lookAround] } }] },
        { toolUse: [{ name: "echo", input: { message: echo } }] },
        { toolUse: [{ name: "writeTextFile", input: { path: "report.md", text: report } }] },
        { toolUse: [{ name: "attemptCompletion", input: {} }] },
        done,
      ],
    };
  }
  return {
    steps: [
      { text: "Let me look at the sandbox I am running in.", toolUse: [{ name: "Bash", input: { command: lookAround, description: "Look around" } }] },
      { toolUse: [{ name: "mcp__everything__echo", input: { message: echo } }] },
      // Claude Code's Write refuses to replace a file it has not read: the demo gives each run a workspace without
      // an earlier report.md (see clearEarlierReport).
      { toolUse: [{ name: "Write", input: { file_path: "/workspace/report.md", content: report } }] },
      done,
    ],
  };
}

function demoConfig(port: number, runtime: DemoRuntime): string {
  return `# Written by npm run demo. The model is the scripted fake server, so no API key is needed.
runtime = "${runtime}"
maxRetries = 0

[provider]
providerName = "anthropic"
[provider.setting]
baseUrl = "http://host.docker.internal:${port}"

[experts."sandbox-reporter"]
description = "Looks around its sandbox and writes a short report."
instruction = "Inspect the environment you run in, try your skills, then write report.md in the workspace."

[experts."sandbox-reporter".skills."base"]
type = "mcpStdioSkill"
description = "Perstack's base skill: files, exec, todo, attemptCompletion (built in; ignored by CLI runtimes)."
command = "npx"
packageName = "@perstack/base"

[experts."sandbox-reporter".skills."everything"]
type = "mcpStdioSkill"
description = "The MCP reference server: echo and other test tools."
command = "npx"
packageName = "@modelcontextprotocol/server-everything@2026.8.31"
`;
}

/**
 * Each run starts without the report an earlier demo run wrote, so the agent's write is a new file and what is
 * there afterwards is this run's. A report.md the demo did not write is left alone, and the demo stops instead.
 */
function clearEarlierReport(): string | undefined {
  if (!existsSync(REPORT_FILE)) return undefined;
  const text = readFileSync(REPORT_FILE, "utf8");
  if (!text.startsWith(`${REPORT_TITLE}\n`) || !text.includes(REPORT_FIRST_POINT)) {
    return `${REPORT_FILE} was not written by the demo: move it out of ${WORKSPACE}, then run the demo again`;
  }
  rmSync(REPORT_FILE);
  return undefined;
}

function jobIds(jobsDir: string): string[] {
  return existsSync(jobsDir) ? readdirSync(jobsDir) : [];
}

/** What went wrong with the run, checked on disk rather than taken from the exit code alone; empty when nothing. */
function checkRun(jobsDir: string, jobsBefore: string[], report: string, exitCode: number | undefined): { jobId?: string; problems: string[] } {
  const problems: string[] = [];
  if (exitCode !== 0) problems.push(`perstack run exited with code ${exitCode ?? "none (killed)"}`);
  const newJobs = jobIds(jobsDir).filter((id) => !jobsBefore.includes(id));
  const jobId = newJobs.length === 1 ? newJobs[0] : undefined;
  if (jobId === undefined) {
    problems.push(`expected one new job under ${jobsDir}, found ${newJobs.length}`);
  } else {
    let status = "unreadable";
    try {
      status = String((JSON.parse(readFileSync(join(jobsDir, jobId, "job.json"), "utf8")) as { status?: unknown }).status);
    } catch {
      // reported below as "unreadable"
    }
    if (status !== "completed") problems.push(`job ${jobId} is ${status}, not completed`);
  }
  if (!existsSync(REPORT_FILE)) problems.push(`the agent did not write ${REPORT_FILE}`);
  else if (readFileSync(REPORT_FILE, "utf8") !== report) problems.push(`${REPORT_FILE} does not hold the report this run wrote`);
  return { jobId, problems };
}

async function main(): Promise<number> {
  const runtime = (process.argv[2] ?? "perstack") as DemoRuntime;
  if (!RUNTIMES.includes(runtime)) {
    say(`unknown demo runtime "${runtime}"; use perstack (the default) or claude-code`);
    return 2;
  }
  if (!existsSync(CLI)) {
    say("dist/ is missing: run npm run build first");
    return 1;
  }
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (error) {
    say(`Docker is required and did not answer (${(error as Error).message}); start the Docker engine and try again`);
    return 1;
  }
  mkdirSync(WORKSPACE, { recursive: true });
  const notClean = clearEarlierReport();
  if (notClean) {
    say(notClean);
    return 1;
  }
  const { images, problem } = await ensureBaseImages(docker, { say });
  if (problem) {
    say(problem);
    return 1;
  }
  say(`building the fake model server image from test/fake-models (FROM ${images.node.ref})`);
  await buildFakeModelImage(docker, FAKE_IMAGE, images.node.ref);
  const { container, port } = await startFake(docker);
  try {
    const report = reportFor(runtime, new Date().toISOString());
    const scripted = await fetch(`http://127.0.0.1:${port}/_script?protocol=anthropic`, { method: "POST", body: JSON.stringify(scriptFor(runtime, report)) });
    if (!scripted.ok) throw new Error(`the fake model rejected its script: ${scripted.status}`);
    writeFileSync(join(WORKSPACE, "perstack.toml"), demoConfig(port, runtime));
    const jobsDir = join(WORKSPACE, "perstack", "jobs");
    const jobsBefore = jobIds(jobsDir);
    // As root the agent (uid 1000) cannot write this directory: perstack copies it in and the report back out.
    say(`workspace: ${WORKSPACE}`);
    say(`running: perstack run sandbox-reporter "Report on your sandbox" --runtime ${runtime} (fake model on port ${port})`);
    const run = await execa(process.execPath, [CLI, "run", "sandbox-reporter", "Report on your sandbox"], {
      cwd: WORKSPACE,
      env: { ANTHROPIC_API_KEY: "demo-key-not-a-secret" },
      stdio: "inherit",
      reject: false,
    });
    const { jobId, problems } = checkRun(jobsDir, jobsBefore, report, run.exitCode);
    if (problems.length > 0) {
      say(`the demo did not do what it should: ${problems.join("; ")}`);
      if (jobId) say(`what happened is recorded in ${join(jobsDir, jobId)}`);
      return run.exitCode || 1;
    }
    say(`report written to ${REPORT_FILE} by job ${jobId} (completed); its events and checkpoints are in ${join(jobsDir, jobId!)}`);
    if (runtime === "perstack") say("next: npm run demo -- claude-code runs the same expert on the real Claude Code CLI");
    return 0;
  } finally {
    await container.stop({ t: 1 }).catch(() => {});
  }
}

process.exitCode = await main();
