// Exit codes as the README and --help state them (2 is bad input only; Docker down, a failed image build and
// sandbox failures are 1), and what Ctrl-C leaves behind: nothing, or an exact list.
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."writer"]
description = "Writes files"
instruction = "Do as asked."
`;

/** Containers, volumes and networks still labelled with the job. */
async function leftovers(jobId: string): Promise<string[]> {
  const filters = { label: [`perstack.job=${jobId}`] };
  const containers = await docker!.listContainers({ all: true, filters });
  const volumes = (await docker!.listVolumes({ filters })).Volumes ?? [];
  const networks = await docker!.listNetworks({ filters });
  return [...containers.map((c) => c.Names[0]!.replace(/^\//, "")), ...volumes.map((v) => v.Name), ...networks.map((n) => n.Name)].sort();
}

/** Starts a run that sits in a 60 s tool call, and resolves its job id once the call is under way. */
function startLongRun(ws: string, extraEnv: Record<string, string> = {}) {
  const child = runCli(["run", "writer", "wait a minute", "--json"], { cwd: ws, env: { ...keyEnv(), ...extraEnv } });
  const jobId = new Promise<string>((resolve) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (line.includes('"callTools"')) resolve((JSON.parse(line) as { jobId: string }).jobId);
      }
    });
  });
  return { child, jobId };
}

describe("exit codes without Docker", () => {
  it("bad flags are bad input: exit 2 and one line", async () => {
    for (const args of [["run", "writer", "q", "--bogus"], ["run", "writer", "q", "--memory", "lots"], ["run", "writer", "q", "--workspace-mode", "mirror"], ["frobnicate"]]) {
      const result = await runCli(args, { cwd: process.cwd() });
      expect(result.exitCode, `${args.join(" ")}: ${result.all}`).toBe(2);
      expect(result.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(result.stderr).toMatch(/^perstack: /);
    }
  });

  it("--help and --version-less help exit 0", async () => {
    const result = await runCli(["run", "--help"], { cwd: process.cwd() });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/Exit codes: 0 completed; 1 .*Docker, an image build or the\nsandbox failed; 2 bad input/);
  });

  it("Docker down is not bad input: exit 1, one line naming the engine", async () => {
    const ws = (await import("../support/cli.js")).makeWorkspace(perstackToml({ baseUrl: "http://host.docker.internal:1", experts: EXPERTS }), "perstack-exit-");
    const result = await runCli(["run", "writer", "q"], { cwd: ws, env: { ...keyEnv(), DOCKER_HOST: "unix:///nonexistent/docker.sock" } });
    expect(result.exitCode, result.all).toBe(1);
    expect(result.stderr.trim()).toMatch(/^perstack: cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker\.sock .*start Docker, or set DOCKER_HOST$/);
  });
});

describe.skipIf(!docker)("exit codes and interrupts with Docker", () => {
  const suite = fakeModelSuite(docker!, "perstack-exit-");

  it("an image build failure exits 1", async () => {
    // A base image without even a shell: the agent image's first RUN fails at once.
    const empty = `perstack-test/empty-base:${Date.now()}`;
    const imported = await execa("sh", ["-c", `tar -cf - -T /dev/null | docker import - ${empty}`], { reject: false });
    expect(imported.exitCode, imported.stderr).toBe(0);
    try {
      const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, experts: EXPERTS }));
      const result = await runCli(["run", "writer", "q"], { cwd: ws, env: { ...keyEnv(), PERSTACK_BASE_IMAGE_NODE: empty } });
      expect(result.exitCode, result.all).toBe(1);
      expect(result.stderr).toMatch(/perstack: building perstack\/agent-perstack:[0-9a-f]+ failed/);
    } finally {
      await execa("docker", ["rmi", "-f", empty], { reject: false });
    }
  });

  it("a second Ctrl-C still removes everything the run created", async () => {
    await suite.fake.script([{ toolUse: [{ name: "exec", input: { command: "sleep", args: ["60"], timeout: 120000 } }] }, { text: "never" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, experts: EXPERTS }));
    const { child, jobId } = startLongRun(ws);
    const id = await jobId;
    child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 100));
    child.kill("SIGINT");
    const result = await child;
    expect(result.exitCode, result.all).toBe(130);
    expect(result.stderr).toMatch(/SIGINT: removing .* now/);
    expect(await leftovers(id)).toEqual([]);
  });

  it("a third Ctrl-C quits at once and names exactly what is left, with the commands that remove it", async () => {
    await suite.fake.script([{ toolUse: [{ name: "exec", input: { command: "sleep", args: ["60"], timeout: 120000 } }] }, { text: "never" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, experts: EXPERTS }));
    const { child, jobId } = startLongRun(ws);
    const id = await jobId;
    for (let i = 0; i < 3; i++) child.kill("SIGINT");
    const result = await child;
    expect(result.exitCode, result.all).toBe(130);
    const left = await leftovers(id);
    const said = /left behind: (.*); remove with: (.*)$/m.exec(result.stderr);
    if (left.length === 0) {
      // Removal won the race: then nothing may be claimed as left.
      expect(said === null || said[1] === "", result.stderr).toBe(true);
    } else {
      expect(said, result.stderr).not.toBeNull();
      const named = said![1]!.split(", ").map((entry) => entry.split(" ")[1]!).sort();
      expect(named).toEqual(left);
      await execa("sh", ["-c", said![2]!], { reject: false });
      expect(await leftovers(id)).toEqual([]);
    }
  });

  it("Ctrl-C during an image build stops the build: exit 130 at once, no image, nothing left", async () => {
    // A base image under a new name makes a new agent image tag, so the run has to build.
    const base = `perstack-test/node-abort:${Date.now()}`;
    const node = (await docker!.listImages({ filters: { reference: ["perstack-local/node:22-bookworm-slim"] } }))[0]?.RepoTags?.[0] ?? "node:22-bookworm-slim";
    await execa("docker", ["tag", node, base]);
    // No container is created (an earlier run's teardown may still be removing its own: only new ones count).
    const containersBefore = new Set((await docker!.listContainers({ all: true })).map((c) => c.Id));
    try {
      const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, experts: EXPERTS }));
      const child = runCli(["run", "writer", "q", "--json"], { cwd: ws, env: { ...keyEnv(), PERSTACK_BASE_IMAGE_NODE: base } });
      let tag: string | undefined;
      let interruptedAt = 0;
      child.stdout!.on("data", (chunk: Buffer) => {
        const match = /building (perstack\/agent-perstack:[0-9a-f]+)/.exec(chunk.toString());
        if (match && !tag) {
          tag = match[1];
          interruptedAt = Date.now();
          child.kill("SIGINT");
        }
      });
      const result = await child;
      expect(tag, result.all).toBeDefined();
      expect(result.exitCode, result.all).toBe(130);
      expect(Date.now() - interruptedAt).toBeLessThan(15_000);
      expect((await docker!.listImages({ filters: { reference: [tag!] } })).length).toBe(0);
      // Give the engine a moment to drop the build's intermediate container.
      await new Promise((r) => setTimeout(r, 2_000));
      expect((await docker!.listContainers({ all: true })).filter((c) => !containersBefore.has(c.Id))).toEqual([]);
    } finally {
      await execa("docker", ["rmi", "-f", base], { reject: false });
    }
  });
});
