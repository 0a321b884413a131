// `npm run demo`: the whole product on one machine with no API key. A demo expert runs on the built-in perstack
// runtime (or, with `npm run demo -- claude-code`, on the real Claude Code CLI) inside its sandbox; the model is
// the scripted fake Anthropic server from test/, started as a container and reached through the run's proxy like
// a local model server. Run after `npm run build`.
//
// Plain Node 22 runs this file directly (type stripping), so it imports the built product from dist/ and uses
// erasable TypeScript only.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { execa } from "execa";
import tar from "tar-fs";
import {
  bootstrapBaseImages,
  extraCaCertFilesFromEnv,
  overridesFromEnv,
  resolveBaseImages,
} from "../../dist/src/sandbox/base-images.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CLI = join(ROOT, "dist/src/cli/main.js");
const FAKE_CONTEXT = join(ROOT, "test/fake-models");
const FAKE_IMAGE = "perstack-demo/fake-models:latest";
const WORKSPACE = join(process.cwd(), "perstack-demo");

const say = (message: string) => process.stderr.write(`[demo] ${message}\n`);

async function ensureBaseImages(docker: Docker): Promise<string> {
  const base = await resolveBaseImages(docker, overridesFromEnv());
  if (base.node.id && base.debian.id) return base.node.ref;
  // No local base image: where a registry is reachable the official images are pulled by the first build; where
  // none is (and debootstrap is at hand, as root) build them locally instead.
  const canBootstrap = process.getuid?.() === 0 && ["/usr/sbin/debootstrap", "/usr/bin/debootstrap"].some((p) => existsSync(p));
  if (!canBootstrap) return base.node.ref;
  say("no base images yet: building them from Debian packages and the npm registry (perstack images bootstrap)");
  const built = await bootstrapBaseImages(docker, { caCertFiles: extraCaCertFilesFromEnv(), onProgress: say });
  return built.node.ref;
}

async function buildFake(docker: Docker, nodeImage: string): Promise<void> {
  say(`building the fake model server image from test/fake-models (FROM ${nodeImage})`);
  const context = Readable.from(tar.pack(FAKE_CONTEXT) as unknown as AsyncIterable<Buffer>);
  const stream = await docker.buildImage(context, { t: FAKE_IMAGE, buildargs: { NODE_IMAGE: nodeImage }, rm: true, forcerm: true });
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
      const failed = error?.message ?? output.find((o) => o.error)?.error;
      if (failed) reject(new Error(failed));
      else resolve();
    }),
  );
}

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

const REPORT =
  "# Sandbox report\n\n- Ran inside a per-run container as a non-root user.\n- Reached the model only through the run's proxy.\n- Called an MCP skill that was installed into the image at build time.\n";

/** What the fake model answers, turn by turn, in each runtime's own tool names. */
const SCRIPTS: Record<DemoRuntime, { steps: unknown[] }> = {
  perstack: {
    steps: [
      {
        text: "Let me look at the sandbox I am running in.",
        toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", "echo \"user $(id -u), workspace $(pwd)\"; ls -A /workspace"] } }],
      },
      { toolUse: [{ name: "echo", input: { message: "hello from an MCP skill inside the sandbox" } }] },
      { toolUse: [{ name: "writeTextFile", input: { path: "report.md", text: REPORT } }] },
      { toolUse: [{ name: "attemptCompletion", input: {} }] },
      { text: "Done. I wrote report.md in the workspace: it summarises how this run was sandboxed." },
    ],
  },
  "claude-code": {
    steps: [
      {
        text: "Let me look at the sandbox I am running in.",
        toolUse: [{ name: "Bash", input: { command: "echo \"user $(id -u), workspace $(pwd)\"; ls -A /workspace", description: "Look around" } }],
      },
      { toolUse: [{ name: "mcp__everything__echo", input: { message: "hello from an MCP skill inside the sandbox" } }] },
      { toolUse: [{ name: "Write", input: { file_path: "/workspace/report.md", content: REPORT } }] },
      { text: "Done. I wrote report.md in the workspace: it summarises how this run was sandboxed." },
    ],
  },
};

type DemoRuntime = "perstack" | "claude-code";

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

async function main(): Promise<number> {
  const runtime = (process.argv[2] ?? "perstack") as DemoRuntime;
  if (!(runtime in SCRIPTS)) {
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
  const nodeImage = await ensureBaseImages(docker);
  await buildFake(docker, nodeImage);
  const { container, port } = await startFake(docker);
  try {
    const scripted = await fetch(`http://127.0.0.1:${port}/_script?protocol=anthropic`, { method: "POST", body: JSON.stringify(SCRIPTS[runtime]) });
    if (!scripted.ok) throw new Error(`the fake model rejected its script: ${scripted.status}`);
    mkdirSync(WORKSPACE, { recursive: true });
    writeFileSync(join(WORKSPACE, "perstack.toml"), demoConfig(port, runtime));
    // As root the agent (uid 1000) cannot write this directory: perstack copies it in and the report back out.
    say(`workspace: ${WORKSPACE}`);
    say(`running: perstack run sandbox-reporter "Report on your sandbox" --runtime ${runtime} (fake model on port ${port})`);
    const run = await execa(process.execPath, [CLI, "run", "sandbox-reporter", "Report on your sandbox"], {
      cwd: WORKSPACE,
      env: { ANTHROPIC_API_KEY: "demo-key-not-a-secret" },
      stdio: "inherit",
      reject: false,
    });
    if (run.exitCode === 0) say(`report written to ${join(WORKSPACE, "report.md")}; events and checkpoints in ${join(WORKSPACE, "perstack", "jobs")}`);
    return run.exitCode ?? 1;
  } finally {
    await container.stop({ t: 1 }).catch(() => {});
  }
}

process.exitCode = await main();
