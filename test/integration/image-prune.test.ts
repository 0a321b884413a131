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

async function build(engine: NonNullable<typeof docker>, tag: string, marker: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "perstack-prune-"));
  writeFileSync(join(dir, "Dockerfile"), `FROM ${LOCAL_BASE_IMAGES.debian}\nLABEL perstack.managed="true" perstack.role="agent-image" prune.marker="${marker}"\n`);
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
});
