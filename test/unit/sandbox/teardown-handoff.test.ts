// `perstack run` hands its sandbox to a teardown process and exits (sandbox/teardown-handoff.ts). While that process
// works, a sweep by another perstack command must not take the run's containers for a crashed run's; once it is gone,
// they are a crashed run's again. Its request is checked like any input before a name reaches the Engine API.
import { spawn } from "node:child_process";
import { chmodSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ownerIsGone, OWNER_HOST_LABEL, OWNER_PID_LABEL } from "../../../src/sandbox/labels.js";
import { clearTeardownMarker, parseTeardownRequest, teardownEnv, teardownProcessOf, writeTeardownMarker } from "../../../src/sandbox/teardown-handoff.js";

/** A process that exits at once: its pid names nobody afterwards. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", "0"]);
  await new Promise((resolve) => child.once("exit", resolve));
  return child.pid!;
}

const owners: number[] = [];
afterEach(() => {
  for (const pid of owners.splice(0)) clearTeardownMarker(pid);
});

describe("handing the sandbox to a teardown process", () => {
  it("a gone owner whose teardown process lives is not a crashed run; once that process is gone too, it is", async () => {
    const owner = await deadPid();
    owners.push(owner);
    const labels = { [OWNER_PID_LABEL]: String(owner), [OWNER_HOST_LABEL]: hostname() };
    expect(ownerIsGone(labels)).toBe(true);
    const teardown = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    try {
      writeTeardownMarker(owner, teardown.pid!);
      expect(teardownProcessOf(owner)).toBe(teardown.pid);
      expect(ownerIsGone(labels)).toBe(false);
    } finally {
      teardown.kill("SIGKILL");
      await new Promise((resolve) => teardown.once("exit", resolve));
    }
    // It died without clearing its marker: the marker names nobody, the sweep takes over.
    expect(teardownProcessOf(owner)).toBeUndefined();
    expect(ownerIsGone(labels)).toBe(true);
  });

  it("a marker in a directory others can write to is not believed", async () => {
    const owner = await deadPid();
    owners.push(owner);
    const teardown = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    const dir = join(tmpdir(), `perstack-${process.getuid!()}`, "teardown");
    try {
      writeTeardownMarker(owner, teardown.pid!);
      expect(teardownProcessOf(owner)).toBe(teardown.pid);
      chmodSync(dir, 0o777);
      expect(teardownProcessOf(owner)).toBeUndefined();
    } finally {
      chmodSync(dir, 0o700);
      teardown.kill("SIGKILL");
    }
  });

  it("a marker that is not a pid is no marker", async () => {
    const owner = await deadPid();
    owners.push(owner);
    writeTeardownMarker(owner, 0);
    expect(teardownProcessOf(owner)).toBeUndefined();
  });

  it("the request keeps only well-formed items with Docker object names; anything else is no request", () => {
    const items = [
      { kind: "container", name: "perstack-abc-agent", phase: 0 },
      { kind: "network", name: "perstack-abc-internal", phase: 2 },
      { kind: "container", name: "--force", phase: 0 },
      { kind: "container", name: "../x", phase: 0 },
      { kind: "image", name: "perstack-abc", phase: 0 },
      { kind: "volume", name: "perstack-abc-ws", phase: "1" },
      null,
    ];
    expect(parseTeardownRequest(JSON.stringify({ ownerPid: 42, items }))).toEqual({ ownerPid: 42, items: items.slice(0, 2) });
    for (const bad of ["", "not json", "[]", JSON.stringify({ ownerPid: -1, items: [] }), JSON.stringify({ ownerPid: 1.5, items: [] }), JSON.stringify({ ownerPid: 7 })]) {
      expect(parseTeardownRequest(bad), bad).toBeUndefined();
    }
  });

  it("the teardown process gets the way to the engine and the temporary directory, no key of the user's", () => {
    const env = { PATH: "/bin", HOME: "/home/u", TMPDIR: "/t", DOCKER_HOST: "unix:///d.sock", DOCKER_CERT_PATH: "/c", ANTHROPIC_API_KEY: "sk-secret", AWS_SECRET_ACCESS_KEY: "s" };
    expect(teardownEnv(env)).toEqual({ PATH: "/bin", HOME: "/home/u", TMPDIR: "/t", DOCKER_HOST: "unix:///d.sock", DOCKER_CERT_PATH: "/c" });
  });
});
