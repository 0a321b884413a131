// A refill's lock (warm-shells.ts takeFillLock) held by a process of this host that died is taken over at once; one
// held by a live process, or by a process of another host, is left to it.
import { hostname } from "node:os";
import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { takeFillLock } from "../../../src/sandbox/warm-shells.js";
import type { ShellSpec } from "../../../src/plan/warm-shell.js";

const spec = { signature: "abc123", proxy: { image: "perstack/proxy:1" } } as unknown as ShellSpec;
/** A pid no process has (pids are below 2^22 on Linux). */
const DEAD_PID = String(2 ** 22 + 17);

/** An engine holding the lock under `labels`: creating the name again is a 409 until the holder is removed. */
function engineWithLock(labels: Record<string, string>) {
  const log: string[] = [];
  let held = true;
  const docker = {
    createContainer: async (options: { name: string; Labels: Record<string, string> }) => {
      log.push(`create ${options.name}`);
      if (held) throw Object.assign(new Error("Conflict"), { statusCode: 409 });
      held = true;
      return { id: "new-lock", labels: options.Labels };
    },
    getContainer: (id: string) => ({
      inspect: async () => ({ Id: "old-lock", Config: { Labels: labels } }),
      remove: async () => {
        log.push(`remove ${id}`);
        held = false;
      },
    }),
  } as unknown as Docker;
  return { docker, log };
}

describe("a refill's fill lock", () => {
  it("held by a process of this host that died: removed by its id, and taken", async () => {
    const { docker, log } = engineWithLock({ "perstack.owner-pid": DEAD_PID, "perstack.owner-host": hostname() });
    const lock = (await takeFillLock(docker, spec)) as unknown as { id: string; labels: Record<string, string> };
    expect(lock.id).toBe("new-lock");
    expect(lock.labels["perstack.owner-pid"]).toBe(String(process.pid));
    expect(log).toEqual(["create perstack-shell-fill-abc123", "remove old-lock", "create perstack-shell-fill-abc123"]);
  });

  it.each([
    ["a live process", { "perstack.owner-pid": String(process.ppid), "perstack.owner-host": hostname() }],
    ["a process of another host", { "perstack.owner-pid": DEAD_PID, "perstack.owner-host": `not-${hostname()}` }],
    ["no owner at all", {}],
  ])("held by %s: left to it", async (_what, labels) => {
    const { docker, log } = engineWithLock(labels);
    expect(await takeFillLock(docker, spec)).toBeUndefined();
    expect(log).toEqual(["create perstack-shell-fill-abc123"]);
  });
});
