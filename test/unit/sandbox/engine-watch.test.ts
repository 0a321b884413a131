// EngineWatch against a stand-in engine: an HTTP server on a unix socket that answers /_ping, stopped and started
// again as a restarting engine would be. (test/e2e/engine-restart.test.ts restarts a real one.)
import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Docker from "dockerode";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { afterEngineLoss, EngineWatch } from "../../../src/sandbox/engine-watch.js";
import { SandboxResources } from "../../../src/sandbox/sandbox-resources.js";

let dir: string;
let socket: string;
let server: Server | undefined;

function startEngine(): Promise<void> {
  const s = createServer((request, response) => {
    response.writeHead(request.url?.startsWith("/_ping") ? 200 : 404, { "content-type": "text/plain" });
    response.end("OK");
  });
  server = s;
  return new Promise((resolve) => s.listen(socket, resolve));
}

function stopEngine(): Promise<void> {
  const s = server;
  server = undefined;
  if (!s) return Promise.resolve();
  s.closeAllConnections();
  return new Promise((resolve) => s.close(() => resolve()));
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "perstack-engine-watch-"));
  socket = join(dir, "docker.sock");
});

afterEach(async () => {
  await stopEngine();
  rmSync(dir, { recursive: true, force: true });
});

describe("EngineWatch", () => {
  it("an engine that answers is not lost; one that stops answering is, and stays so", async () => {
    await startEngine();
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    expect(await watch.check()).toBe(false);
    await stopEngine();
    let lost = false;
    void watch.lost.then(() => (lost = true));
    expect(await watch.check()).toBe(true);
    await Promise.resolve();
    expect(lost).toBe(true);
    // Once lost, lost: the run is already being wound up.
    await startEngine();
    expect(await watch.check()).toBe(true);
  });

  it("asks on a new connection: an engine shutting down still answers on the ones it has open", async () => {
    await startEngine();
    const docker = new Docker({ socketPath: socket });
    const watch = new EngineWatch(docker);
    await docker.ping();
    // What a stopping dockerd does first: its socket is gone, its open (idle, kept-alive) connections still answer.
    unlinkSync(socket);
    await expect(docker.ping()).resolves.toBeDefined();
    expect(await watch.check()).toBe(true);
  });

  it("checks side by side share one question", async () => {
    await startEngine();
    let pings = 0;
    server!.on("request", () => pings++);
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    expect(await Promise.all([watch.check(), watch.check(), watch.check()])).toEqual([false, false, false]);
    expect(pings).toBe(1);
  });

  it("waits for an engine that comes back, and gives up on one that does not", async () => {
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    const signal = new AbortController().signal;
    let started = Date.now();
    expect(await watch.answersAgain(1_000, signal)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_500);
    started = Date.now();
    setTimeout(() => void startEngine(), 700);
    expect(await watch.answersAgain(10_000, signal)).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("stops waiting when the user interrupts", async () => {
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    expect(await watch.answersAgain(60_000, controller.signal)).toBe(false);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe("afterEngineLoss", () => {
  function resourcesWith(log: string[]): SandboxResources {
    const resources = new SandboxResources({} as Docker);
    const handle = (name: string) => ({ remove: async () => void log.push(name) });
    resources.container("perstack-x-agent", handle("container perstack-x-agent") as unknown as Docker.Container);
    resources.network("perstack-x-internal", handle("network perstack-x-internal") as unknown as Docker.Network);
    return resources;
  }

  it("the engine comes back: the work is copied back first, then the sandbox removed; EngineRestarted", async () => {
    const log: string[] = [];
    const statuses: string[] = [];
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    setTimeout(() => void startEngine(), 300);
    const resources = resourcesWith(log);
    const loss = await afterEngineLoss(watch, resources, {
      signal: new AbortController().signal,
      status: (text) => statuses.push(text),
      beforeRemoval: async () => void log.push("copied back"),
      boundMs: 10_000,
    });
    expect(loss?.name).toBe("EngineRestarted");
    expect(log).toEqual(["copied back", "container perstack-x-agent", "network perstack-x-internal"]);
    expect(resources.remaining()).toEqual([]);
    expect(statuses).toEqual(["stopped: the Docker engine stopped answering; waiting up to 10 s for it to remove the sandbox"]);
  });

  it("the engine does not come back in time: nothing is tried, EngineStopped names what is left", async () => {
    const log: string[] = [];
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    const loss = await afterEngineLoss(watch, resourcesWith(log), {
      signal: new AbortController().signal,
      status: () => {},
      beforeRemoval: async () => void log.push("copied back"),
      boundMs: 600,
    });
    expect(loss?.name).toBe("EngineStopped");
    expect(loss?.message).toMatch(/Left on the engine: container perstack-x-agent, network perstack-x-internal/);
    expect(log).toEqual([]);
  });

  it("an interrupt while it waits: no outcome of its own (the run is interrupted)", async () => {
    const watch = new EngineWatch(new Docker({ socketPath: socket }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    expect(await afterEngineLoss(watch, resourcesWith([]), { signal: controller.signal, status: () => {}, boundMs: 60_000 })).toBeUndefined();
  });
});
