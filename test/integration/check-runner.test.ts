// runCheck on the real engine: the user's --check command against a run's final workspace, in a fresh container
// with no network, as a non-root user, on a throwaway copy; its exit code, time limit and output tail; and nothing
// left behind (container or copy), whatever the outcome.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runCheck, type CheckArgs } from "../../src/compare/check-runner.js";
import { MAX_OUTPUT_TAIL } from "../../src/compare/comparison.js";
import { diffWorkspaces } from "../../src/compare/workspace-diff.js";
import { SandboxError } from "../../src/errors.js";
import { overridesFromEnv, resolveBaseImages } from "../../src/sandbox/base-images.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();

describe.skipIf(!docker)("runCheck", () => {
  const engine = docker as Docker;
  const comparison = `checktest${randomBytes(4).toString("hex")}`;
  const labels = { "perstack.comparison": comparison };
  let image: string;
  let dir: string;
  let workspace: string;
  let scratch: string;

  beforeAll(async () => {
    image = (await resolveBaseImages(engine, overridesFromEnv())).node.ref;
  });

  afterEach(async () => {
    // Nothing of any check is left: no container with its labels, no copy in the temporary directory it was given.
    expect(await engine.listContainers({ all: true, filters: { label: [`perstack.comparison=${comparison}`] } })).toEqual([]);
    expect(readdirSync(scratch)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  const setUp = (): void => {
    dir = mkdtempSync(join(tmpdir(), "perstack-check-test-"));
    workspace = join(dir, "workspace");
    scratch = join(dir, "scratch");
    mkdirSync(scratch);
    mkdirSync(join(workspace, "src"), { recursive: true });
    writeFileSync(join(workspace, "package.json"), '{"name":"demo"}\n');
    writeFileSync(join(workspace, "src/index.js"), "console.log('hi')\n");
  };

  const check = (command: string, extra: Partial<CheckArgs> = {}): ReturnType<typeof runCheck> =>
    runCheck(engine, { command, workspaceDir: workspace, image, user: { uid: 1000, gid: 1000 }, timeoutMs: 60_000, labels, tempDir: scratch, ...extra });

  it("a passing check: exit 0, passed, its output", async () => {
    setUp();
    const result = await check("test -f package.json && node src/index.js && echo done");
    expect(result).toMatchObject({ command: "test -f package.json && node src/index.js && echo done", passed: true, exitCode: 0, timedOut: false, outputTail: "hi\ndone\n" });
    expect(result.durationMs).toBeGreaterThan(0);
  });

  it("a failing check: its exit code, and the tail of stdout and stderr together", async () => {
    setUp();
    const result = await check("echo to-stdout; echo to-stderr >&2; exit 3");
    expect(result).toMatchObject({ passed: false, exitCode: 3, timedOut: false });
    expect(result.outputTail).toContain("to-stdout\n");
    expect(result.outputTail).toContain("to-stderr\n");
  });

  it("a check that outlives its time limit is killed and marked timed out", async () => {
    setUp();
    const started = Date.now();
    const result = await check("echo starting; sleep 60", { timeoutMs: 1_500 });
    expect(result).toMatchObject({ passed: false, exitCode: null, timedOut: true, outputTail: "starting\n" });
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("keeps only the tail of a flood of output", async () => {
    setUp();
    const result = await check("i=0; while [ $i -lt 20000 ]; do echo \"line $i of a long flood of output\"; i=$((i+1)); done");
    expect(result.passed).toBe(true);
    expect(result.outputTail.length).toBeLessThanOrEqual(MAX_OUTPUT_TAIL);
    expect(result.outputTail.length).toBeGreaterThan(MAX_OUTPUT_TAIL - 100);
    expect(result.outputTail.startsWith("line ")).toBe(true);
    expect(result.outputTail.endsWith("line 19999 of a long flood of output\n")).toBe(true);
  });

  it("runs as the given user, with a read-only root, no capabilities and a writable HOME and /tmp", async () => {
    setUp();
    const result = await check(
      'id -u; id -g; grep CapEff /proc/self/status; touch /probe 2>/dev/null && echo root-writable; touch "$HOME/h" /tmp/t && echo home-ok; grep -c NoNewPrivs:.1 /proc/self/status',
    );
    expect(result.exitCode).toBe(0);
    expect(result.outputTail).toBe("1000\n1000\nCapEff:\t0000000000000000\nhome-ok\n1\n");
  });

  describe("with a server on the host that a container on the default bridge can reach", () => {
    let server: Server;
    let port: number;
    let gateway: string;

    beforeAll(async () => {
      // The probe exits as soon as it connects: a reset on this side is expected.
      server = createServer((socket) => socket.on("error", () => {}).end("hello\n"));
      await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
      port = (server.address() as { port: number }).port;
      const bridge = await engine.getNetwork("bridge").inspect();
      gateway = (bridge as { IPAM: { Config: Array<{ Gateway?: string }> } }).IPAM.Config[0]!.Gateway!;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    const probe = (): string =>
      `node -e "const s = require('net').connect(${port}, '${gateway}'); s.setTimeout(5000); ` +
      `s.on('connect', () => { console.log('CONNECTED'); process.exit(0); }); ` +
      `s.on('timeout', () => { console.log('TIMEOUT'); process.exit(7); }); ` +
      `s.on('error', (e) => { console.log('ERROR', e.code); process.exit(7); });"; ls /sys/class/net`;

    it("the check has no network: the same probe that connects from the bridge fails from the check", async () => {
      setUp();
      // The control: on the default bridge the probe does connect, so a failure below is the check's doing.
      const control = await engine.createContainer({ Image: image, Cmd: ["sh", "-c", probe()], User: "1000:1000", Labels: labels, HostConfig: { NetworkMode: "bridge" } });
      try {
        await control.start();
        expect(((await control.wait()) as { StatusCode: number }).StatusCode).toBe(0);
      } finally {
        await control.remove({ force: true });
      }

      const result = await check(probe());
      expect(result.passed).toBe(true);
      expect(result.outputTail).toMatch(/^ERROR (ENETUNREACH|EHOSTUNREACH|ECONNREFUSED)\nlo\n$/);
    });
  });

  it("writes into /workspace change only the throwaway copy, never the run's final workspace", async () => {
    setUp();
    // Hostile leftovers of the agent: a link out of the workspace and a FIFO (which the copy skips).
    symlinkSync("/etc/passwd", join(workspace, "passwd-link"));
    execFileSync("mkfifo", [join(workspace, "pipe")]);
    const snapshot = join(dir, "snapshot");
    execFileSync("cp", ["-a", workspace, snapshot]);
    const result = await check(
      "echo changed > package.json && rm src/index.js && mkdir -p build && echo out > build/out.txt && " +
        "echo x > passwd-link 2>/dev/null; ls -la > /dev/null && echo wrote",
    );
    expect(result.outputTail).toContain("wrote\n");
    expect(result.passed).toBe(true);
    expect(readFileSync(join(workspace, "package.json"), "utf8")).toBe('{"name":"demo"}\n');
    expect((await diffWorkspaces(snapshot, workspace)).files).toEqual([]);
  });

  it("an interrupt stops the check, removes everything, and is an error naming the check", async () => {
    setUp();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1_500);
    await expect(check("sleep 60", { signal: controller.signal })).rejects.toThrow('the check "sleep 60" was interrupted');
  });

  it("an engine error is one line naming the check, not the engine's wording", async () => {
    setUp();
    const error = await check("true", { image: `perstack-test/absent-${comparison}:none` }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxError);
    expect((error as Error).message).toBe(
      `the check "true" could not run: its image perstack-test/absent-${comparison}:none is not in the Docker engine; build or pull it first`,
    );
  });

  it("refuses to run as root", async () => {
    setUp();
    await expect(check("true", { user: { uid: 0, gid: 0 } })).rejects.toThrow(/must not run as root/);
  });
});
