// Base images against the real engine: role resolution, an idempotent offline bootstrap, and images that keep the
// official images' contract (Node 22 as uid 1000, npm and apt usable in builds FROM them).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type Docker from "dockerode";
import tar from "tar-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BASE_IMAGE_LABELS,
  LOCAL_BASE_IMAGES,
  OFFICIAL_BASE_IMAGES,
  bootstrapBaseImages,
  debianSources,
  extraCaCertFilesFromEnv,
  parseAptSources,
  resolveBaseImages,
  type BaseImageRole,
  type ResolvedBaseImage,
} from "../../src/sandbox/base-images.ts";
import { requireDocker } from "../support/docker.ts";

const docker = await requireDocker();

describe("apt sources (pure)", () => {
  it("takes the first deb entry carrying the suite, and the security entry, from deb822 and one-line files", () => {
    const files = [
      { name: "/etc/apt/sources.list", text: "# comment\ndeb-src http://src.example/debian bookworm main\n" },
      { name: "/etc/apt/sources.list.d/a-cloud.list", text: "deb [arch=amd64] https://cloud.example/apt cloud-sdk main\n" },
      {
        name: "/etc/apt/sources.list.d/debian.sources",
        text:
          "Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
          "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n",
      },
    ];
    expect(parseAptSources(files, "bookworm")).toEqual({
      mirror: "http://deb.debian.org/debian",
      securityMirror: "http://deb.debian.org/debian-security",
    });
    expect(parseAptSources(files.slice(0, 2), "bookworm")).toEqual({ mirror: "https://cloud.example/apt", securityMirror: undefined });
    expect(parseAptSources([], "bookworm")).toEqual({ mirror: undefined, securityMirror: undefined });
  });

  it("writes the image's sources with updates, and security only when known", () => {
    expect(debianSources({ suite: "bookworm", mirror: "http://m/debian" })).toContain("Suites: bookworm bookworm-updates\n");
    expect(debianSources({ suite: "bookworm", mirror: "http://m/debian" })).not.toContain("security");
    expect(debianSources({ suite: "bookworm", mirror: "http://m/debian", securityMirror: "http://m/debian-security" })).toContain(
      "URIs: http://m/debian-security\nSuites: bookworm-security\n",
    );
  });
});

describe.skipIf(!docker)("base images (real Docker)", () => {
  const engine = docker as Docker;
  // The same inputs as the bootstrap in the suite's global setup (test/support/ensure-base-images.ts), so this
  // reuses its images.
  const caCertFiles = extraCaCertFilesFromEnv();
  let first: Record<BaseImageRole, ResolvedBaseImage>;

  beforeAll(async () => {
    first = await bootstrapBaseImages(engine, { caCertFiles, onProgress: (message) => console.log(message) });
  });

  it("bootstraps both roles as labelled local images", async () => {
    for (const role of ["debian", "node"] as const) {
      expect(first[role].ref).toBe(LOCAL_BASE_IMAGES[role]);
      const info = await engine.getImage(LOCAL_BASE_IMAGES[role]).inspect();
      expect(info.Id).toBe(first[role].id);
      expect(info.Config.Labels).toMatchObject({
        [BASE_IMAGE_LABELS.managed]: "true",
        [BASE_IMAGE_LABELS.role]: `base-${role}`,
      });
      expect(info.Config.Labels?.[BASE_IMAGE_LABELS.inputsHash]).toMatch(/^[0-9a-f]{64}$/);
    }
    const debian = await engine.getImage(LOCAL_BASE_IMAGES.debian).inspect();
    expect(debian.Config.Cmd).toEqual(["bash"]);
    expect(debian.Config.Env).toContain("LANG=C.UTF-8");
  });

  it("a second bootstrap with the same inputs builds nothing", async () => {
    const messages: string[] = [];
    const second = await bootstrapBaseImages(engine, { caCertFiles, onProgress: (message) => messages.push(message) });
    expect(second.debian.id).toBe(first.debian.id);
    expect(second.node.id).toBe(first.node.id);
    expect(messages.filter((message) => message.includes("up to date"))).toHaveLength(2);
    expect(messages.some((message) => /debootstrap|build: Step|npm pack/.test(message))).toBe(false);
  });

  it("resolves an override over the local image, and the official image when no local one exists", async () => {
    const repo = "perstack-test/base-override";
    const tag = `${process.pid}-${Date.now()}`;
    const overrideRef = `${repo}:${tag}`;
    await engine.getImage(LOCAL_BASE_IMAGES.debian).tag({ repo, tag });
    try {
      const resolved = await resolveBaseImages(engine, { debian: overrideRef });
      expect(resolved.debian).toEqual({ role: "debian", ref: overrideRef, id: first.debian.id });
      expect(resolved.node).toEqual({ role: "node", ref: LOCAL_BASE_IMAGES.node, id: first.node.id });

      const missing = await resolveBaseImages(engine, { node: "perstack-test/not-built:nowhere" });
      expect(missing.node).toEqual({ role: "node", ref: "perstack-test/not-built:nowhere" });
    } finally {
      await engine.getImage(overrideRef).remove();
    }

    const absentLocal = { debian: "perstack-test/absent-debian:none", node: "perstack-test/absent-node:none" };
    const fallback = await resolveBaseImages(engine, {}, absentLocal);
    expect(fallback.debian.ref).toBe(OFFICIAL_BASE_IMAGES.debian);
    expect(fallback.node.ref).toBe(OFFICIAL_BASE_IMAGES.node);
  });

  it("the node image runs Node 22 and npm as the node user (uid 1000)", async () => {
    const output = await runInImage(engine, LOCAL_BASE_IMAGES.node, ["sh", "-c", "id -u; id -g; echo $HOME; node --version; npm --version; npx --version"], "node");
    const [uid, gid, home, nodeVersion, npmVersion, npxVersion] = output.trim().split("\n");
    expect({ uid, gid, home }).toEqual({ uid: "1000", gid: "1000", home: "/home/node" });
    expect(nodeVersion).toMatch(/^v22\.\d+\.\d+$/);
    expect(npmVersion).toMatch(/^10\.\d+\.\d+$/);
    expect(npxVersion).toBe(npmVersion);
    // Like the official image's entrypoint, arguments starting with "-" go to node.
    expect((await runInImage(engine, LOCAL_BASE_IMAGES.node, ["-p", "process.getuid()"], "1000")).trim()).toBe("1000");
  });

  describe("builds FROM the base images reach the package registries", () => {
    const built: string[] = [];
    afterAll(async () => {
      for (const ref of built) await engine.getImage(ref).remove({ force: true }).catch(() => {});
    });

    it("npm install works in a build FROM the node image (extra CA certificates, when configured, are trusted)", async () => {
      const ref = `perstack-test/base-node-npm:${process.pid}`;
      built.push(ref);
      await buildFrom(engine, ref, [
        `FROM ${LOCAL_BASE_IMAGES.node}`,
        "USER node",
        "WORKDIR /home/node",
        'RUN npm install --no-audit --no-fund --no-update-notifier is-number@7 && node -e "process.exit(require(\'is-number\')(5) ? 0 : 1)"',
      ]);
    });

    it("apt-get install works in a build FROM the debian image", async () => {
      const ref = `perstack-test/base-debian-apt:${process.pid}`;
      built.push(ref);
      await buildFrom(engine, ref, [
        `FROM ${LOCAL_BASE_IMAGES.debian}`,
        "RUN apt-get update && apt-get install -y --no-install-recommends jq && jq --version && test ! -e /var/cache/apt/pkgcache.bin",
      ]);
    });
  });
});

/** Runs a command to completion with no network and returns its stdout and stderr. */
async function runInImage(engine: Docker, image: string, cmd: string[], user: string): Promise<string> {
  const container = await engine.createContainer({ Image: image, Cmd: cmd, User: user, HostConfig: { NetworkMode: "none" } });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = demux(await container.logs({ stdout: true, stderr: true, follow: false }));
    expect(StatusCode, output).toBe(0);
    return output;
  } finally {
    await container.remove({ force: true });
  }
}

/** Without a TTY the engine frames each chunk: 1 byte stream type, 3 zero bytes, 4 bytes big-endian length. */
function demux(buffer: Buffer): string {
  let text = "";
  for (let offset = 0; offset + 8 <= buffer.length; ) {
    const size = buffer.readUInt32BE(offset + 4);
    text += buffer.subarray(offset + 8, offset + 8 + size).toString("utf8");
    offset += 8 + size;
  }
  return text;
}

async function buildFrom(engine: Docker, ref: string, dockerfile: string[]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "perstack-base-test-"));
  try {
    await writeFile(join(dir, "Dockerfile"), `${dockerfile.join("\n")}\n`);
    const context = Readable.from(tar.pack(dir) as unknown as AsyncIterable<Buffer>);
    const stream = await engine.buildImage(context, { t: ref, nocache: true, rm: true, forcerm: true, version: "1" });
    const log: string[] = [];
    await new Promise<void>((resolve, reject) => {
      engine.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { stream?: string; error?: string }) => {
          if (event.stream) log.push(event.stream);
          if (event.error) reject(new Error(`${event.error}\n${log.join("").slice(-3000)}`));
        },
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
