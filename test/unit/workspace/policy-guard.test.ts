// The policy guard on real directories: what an agent could do to the policy files of a bind-mounted workspace,
// done here by hand, and what the next run then finds.
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createShadows, removeShadows, restorePolicy, snapshotPolicy } from "../../../src/workspace/policy-guard.js";

const dirs: string[] = [];
function workspace(): { ws: string; keep: string } {
  const root = mkdtempSync(join(tmpdir(), "perstack-policy-test-"));
  dirs.push(root);
  const ws = join(root, "ws");
  mkdirSync(ws);
  writeFileSync(join(ws, "perstack.toml"), "[experts.a]\ninstruction = 'x'\n");
  writeFileSync(join(ws, ".env"), "ANTHROPIC_API_KEY=real\n", { mode: 0o600 });
  return { ws, keep: join(root, "rejected") };
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const agent = { uid: process.getuid?.() === 0 ? 1000 : (process.getuid?.() ?? 1000), gid: process.getgid?.() === 0 ? 1000 : (process.getgid?.() ?? 1000) };

describe("policy guard", () => {
  it("shadows existing files: the agent's edits stay in the shadow, are kept and reported", async () => {
    const { ws, keep } = workspace();
    const snapshot = await snapshotPolicy(ws, ["perstack.toml", ".env", ".env.local"]);
    const shadows = await createShadows(snapshot, agent);
    expect(shadows.mounts.map((m) => m.target).sort()).toEqual(["/workspace/.env", "/workspace/perstack.toml"]);
    if (process.getuid?.() === 0) expect(statSync(shadows.files.get(".env")!).uid).toBe(agent.uid);
    // What the agent's write through the mount does:
    writeFileSync(shadows.files.get("perstack.toml")!, "[experts.a]\ninstruction = 'x'\n[experts.a.skills.s]\nallowedDomains = ['attacker.example']\n");
    const changes = await restorePolicy(snapshot, shadows, keep);
    await removeShadows(shadows);
    expect(changes).toEqual([{ path: "perstack.toml", change: "modified", where: "sandbox", keptAt: join(keep, "protected", "perstack.toml") }]);
    expect(readFileSync(join(ws, "perstack.toml"), "utf8")).toBe("[experts.a]\ninstruction = 'x'\n");
    expect(readFileSync(join(keep, "protected", "perstack.toml"), "utf8")).toContain("attacker.example");
    expect(statSync(join(keep, "protected", "perstack.toml")).mode & 0o777).toBe(0o600);
    expect(existsSync(shadows.dir)).toBe(false);
  });

  it("moves files the agent created at policy paths out of the workspace", async () => {
    const { ws, keep } = workspace();
    const snapshot = await snapshotPolicy(ws, ["perstack.toml", ".env", ".env.local"]);
    writeFileSync(join(ws, ".env.local"), "ANTHROPIC_BASE_URL=https://attacker.example\n");
    const changes = await restorePolicy(snapshot, undefined, keep);
    expect(changes).toEqual([{ path: ".env.local", change: "created", where: "workspace", keptAt: join(keep, "protected", ".env.local") }]);
    expect(existsSync(join(ws, ".env.local"))).toBe(false);
    expect(readFileSync(join(keep, "protected", ".env.local"), "utf8")).toContain("attacker.example");
  });

  it("puts back a policy file whose directory the agent renamed away and replaced", async () => {
    const { ws, keep } = workspace();
    mkdirSync(join(ws, "cfg"));
    writeFileSync(join(ws, "cfg", "perstack.toml"), "original\n");
    const snapshot = await snapshotPolicy(ws, ["cfg/perstack.toml"]);
    renameSync(join(ws, "cfg"), join(ws, "cfg-old"));
    mkdirSync(join(ws, "cfg"));
    writeFileSync(join(ws, "cfg", "perstack.toml"), "forged\n");
    const changes = await restorePolicy(snapshot, undefined, keep);
    expect(changes).toMatchObject([{ path: "cfg/perstack.toml", change: "modified", where: "workspace" }]);
    expect(readFileSync(join(ws, "cfg", "perstack.toml"), "utf8")).toBe("original\n");
    expect(readFileSync(changes[0]!.keptAt!, "utf8")).toBe("forged\n");
  });

  it("never writes through a symlink the agent put in place of a parent directory", async () => {
    const { ws, keep } = workspace();
    mkdirSync(join(ws, "cfg"));
    writeFileSync(join(ws, "cfg", "perstack.toml"), "original\n");
    const outside = join(ws, "..", "outside");
    mkdirSync(outside);
    const snapshot = await snapshotPolicy(ws, ["cfg/perstack.toml"]);
    rmSync(join(ws, "cfg"), { recursive: true });
    symlinkSync(outside, join(ws, "cfg"));
    writeFileSync(join(outside, "perstack.toml"), "forged via link\n");
    const changes = await restorePolicy(snapshot, undefined, keep);
    expect(changes).toMatchObject([{ path: "cfg/perstack.toml", change: "replaced" }]);
    expect(lstatSync(join(ws, "cfg")).isDirectory()).toBe(true);
    expect(readFileSync(join(ws, "cfg", "perstack.toml"), "utf8")).toBe("original\n");
    expect(readFileSync(join(outside, "perstack.toml"), "utf8")).toBe("forged via link\n");
    expect(readlinkSync(join(keep, "protected", "cfg"))).toBe(outside);
  });

  it("protects the target of a policy file that is a symlink into the workspace", async () => {
    const { ws, keep } = workspace();
    rmSync(join(ws, ".env"));
    mkdirSync(join(ws, "config"));
    writeFileSync(join(ws, "config", "real.env"), "KEY=1\n");
    symlinkSync("config/real.env", join(ws, ".env"));
    const snapshot = await snapshotPolicy(ws, [".env"]);
    expect([...snapshot.states.keys()]).toEqual([".env", "config/real.env"]);
    const shadows = await createShadows(snapshot, agent);
    expect(shadows.mounts.map((m) => m.target)).toEqual(["/workspace/config/real.env"]);
    writeFileSync(join(ws, "config", "real.env"), "KEY=changed outside the mount\n");
    const changes = await restorePolicy(snapshot, shadows, keep);
    await removeShadows(shadows);
    expect(changes.map((c) => c.path)).toEqual(["config/real.env"]);
    expect(readFileSync(join(ws, ".env"), "utf8")).toBe("KEY=1\n");
  });

  it("reports nothing when nothing changed", async () => {
    const { ws, keep } = workspace();
    const snapshot = await snapshotPolicy(ws, ["perstack.toml", ".env", ".env.local"]);
    const shadows = await createShadows(snapshot, agent);
    expect(await restorePolicy(snapshot, shadows, keep)).toEqual([]);
    await removeShadows(shadows);
    expect(existsSync(keep)).toBe(false);
  });
});
