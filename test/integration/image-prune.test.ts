// images prune keeps the newest image of each repository, never base images, and skips images in use.
import { rmSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import tar from "tar-fs";
import { describe, expect, it } from "vitest";
import { pruneImages } from "../../src/sandbox/image-prune.js";
import { LOCAL_BASE_IMAGES } from "../../src/sandbox/base-images.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();

async function build(engine: NonNullable<typeof docker>, tag: string, marker: string, role = "agent-image"): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "perstack-prune-"));
  writeFileSync(join(dir, "Dockerfile"), `FROM ${LOCAL_BASE_IMAGES.debian}\nLABEL perstack.managed="true" perstack.role="${role}" prune.marker="${marker}"\n`);
  const stream = await engine.buildImage(Readable.from(tar.pack(dir) as unknown as AsyncIterable<Buffer>), { t: tag });
  await new Promise((resolve, reject) => engine.modem.followProgress(stream, (e: Error | null) => (e ? reject(e) : resolve(undefined))));
  rmSync(dir, { recursive: true, force: true });
}

describe.skipIf(!docker)("images prune", () => {
  it("removes older images of a repository and keeps the newest and the base images", async () => {
    const engine = docker!;
    await build(engine, "perstack/agent-prunetest:old", `old-${Date.now()}`);
    await new Promise((r) => setTimeout(r, 1100)); // Created has one-second resolution
    await build(engine, "perstack/agent-prunetest:new", `new-${Date.now()}`);
    // Scoped to this test's images: on a shared engine, other test files' images of the same repositories are in use.
    const result = await pruneImages(engine, { all: false, label: "prune.marker" });
    expect(result.removed).toContain("perstack/agent-prunetest:old");
    expect(result.kept).toContain("perstack/agent-prunetest:new");
    expect([...result.removed, ...result.kept, ...result.skipped].filter((n) => !n.startsWith("perstack/agent-prunetest:"))).toEqual([]);
    await expect(engine.getImage("perstack/agent-prunetest:old").inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await engine.getImage(LOCAL_BASE_IMAGES.debian).inspect()).Id).toBeTruthy();
    await engine.getImage("perstack/agent-prunetest:new").remove();
  });

  it("removes a free warm shell that keeps an older image in use, then the image; a claimed shell's image is skipped", async () => {
    const engine = docker!;
    await build(engine, "perstack/proxy-prunetest:old", `old-${Date.now()}`, "proxy-image");
    await new Promise((r) => setTimeout(r, 1100));
    await build(engine, "perstack/proxy-prunetest:new", `new-${Date.now()}`, "proxy-image");
    // A shell's three parts (what warm-shells.ts looks for), idle on the old image.
    const shell = (id: string, claimed: boolean) =>
      Promise.all(
        (["proxy", "gateway", "agent-network"] as const).map(async (role) => {
          const name = { proxy: `perstack-shell-${id}-proxy`, gateway: `perstack-shell-${id}-gateway`, "agent-network": `perstack-shell-${id}-agent-net` }[role];
          const container = await engine.createContainer({
            name,
            Image: "perstack/proxy-prunetest:old",
            Entrypoint: ["sleep", "infinity"],
            Labels: { "perstack.managed": "true", "perstack.shell": id, "perstack.role": role, "perstack.shell-subnets": "internal=10.213.99.0/28,egress=10.213.99.16/28" },
            HostConfig: { NetworkMode: "none" },
          });
          await container.start();
          if (claimed && role === "proxy") await engine.createContainer({ name: `perstack-shell-${id}-claim`, Image: "perstack/proxy-prunetest:new", Labels: { "perstack.managed": "true", "perstack.shell": id, "perstack.role": "shell-claim" } });
        }),
      );
    const free = `prunefree${Date.now()}`;
    await shell(free, false);
    const result = await pruneImages(engine, { all: false, label: "prune.marker" });
    expect(result.removed).toContain("perstack/proxy-prunetest:old");
    expect(await engine.listContainers({ all: true, filters: { label: [`perstack.shell=${free}`] } })).toEqual([]);

    // A claimed shell is a run's: it stays, and so does the image it uses.
    await build(engine, "perstack/proxy-prunetest:old", `old-${Date.now()}`, "proxy-image");
    const claimed = `pruneclaimed${Date.now()}`;
    await shell(claimed, true);
    const again = await pruneImages(engine, { all: true, label: "prune.marker" });
    expect(again.skipped).toContain("perstack/proxy-prunetest:old");
    expect((await engine.listContainers({ all: true, filters: { label: [`perstack.shell=${claimed}`] } })).length).toBe(4);
    for (const c of await engine.listContainers({ all: true, filters: { label: [`perstack.shell=${claimed}`] } })) await engine.getContainer(c.Id).remove({ force: true });
    for (const tag of ["perstack/proxy-prunetest:old", "perstack/proxy-prunetest:new"]) await engine.getImage(tag).remove().catch(() => undefined);
  });
});
