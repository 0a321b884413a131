// The base-image step in front of `npm run demo` and `npm test`: what it pulls, when it bootstraps, and what it says
// when it can do neither. The engine and the bootstrap are stand-ins here: the real bootstrap is
// test/integration/base-images.test.ts's, and the real pull has no registry to reach on CI machines.
import { PassThrough } from "node:stream";
import type Docker from "dockerode";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { BaseImageRole, ResolvedBaseImage } from "../../../dist/src/sandbox/base-images.js";
import { bootstrapBaseImages, LOCAL_BASE_IMAGES, OFFICIAL_BASE_IMAGES, resolveBaseImages } from "../../../dist/src/sandbox/base-images.js";
import { ensureBaseImages, type Bootstrapper } from "../../support/ensure-base-images.ts";

vi.mock("../../../dist/src/sandbox/base-images.js", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../../dist/src/sandbox/base-images.js")>()),
  resolveBaseImages: vi.fn(),
  bootstrapBaseImages: vi.fn(),
}));

type Images = Record<BaseImageRole, ResolvedBaseImage>;
const image = (role: BaseImageRole, ref: string, present: boolean): ResolvedBaseImage => ({ role, ref, ...(present ? { id: `sha256:${role}` } : {}) });
const official = (present: boolean): Images => ({ debian: image("debian", OFFICIAL_BASE_IMAGES.debian, present), node: image("node", OFFICIAL_BASE_IMAGES.node, present) });
const local = (): Images => ({ debian: image("debian", LOCAL_BASE_IMAGES.debian, true), node: image("node", LOCAL_BASE_IMAGES.node, true) });

const resolve = vi.mocked(resolveBaseImages);
const bootstrap = vi.mocked(bootstrapBaseImages);
const able: () => Bootstrapper = () => ({ ok: true });
const unable: () => Bootstrapper = () => ({ ok: false, reason: "debootstrap needs root" });

/** An engine whose pulls succeed, fail at once (no registry: the engine cannot resolve its name) or never answer. */
function engine(pulls: "succeed" | "fail" | "hang") {
  const pull = vi.fn(async (_ref: string) => {
    if (pulls === "fail") throw new Error('Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host');
    if (pulls === "hang") await new Promise(() => {});
    const stream = new PassThrough();
    stream.end();
    return stream;
  });
  const followProgress = (_stream: unknown, done: (error: Error | null, output: unknown[]) => void) => done(null, []);
  return { docker: { pull, modem: { followProgress } } as unknown as Docker, pull };
}

let said: string[];
const say = (message: string) => void said.push(message);

beforeEach(() => {
  said = [];
  resolve.mockReset();
  bootstrap.mockReset();
  bootstrap.mockResolvedValue(local());
});

describe("ensureBaseImages", () => {
  it("uses images that are here, pulling and building nothing", async () => {
    resolve.mockResolvedValue(local());
    const { docker, pull } = engine("fail");
    expect(await ensureBaseImages(docker, { say, canBootstrap: able })).toEqual({ images: local() });
    expect(pull).not.toHaveBeenCalled();
    expect(bootstrap).not.toHaveBeenCalled();
  });

  it("with refresh, runs the idempotent bootstrap over local stand-ins, and keeps them when that fails", async () => {
    resolve.mockResolvedValue(local());
    const { docker } = engine("fail");
    await ensureBaseImages(docker, { say, refresh: true, canBootstrap: able });
    expect(bootstrap).toHaveBeenCalledTimes(1);

    bootstrap.mockRejectedValueOnce(new Error("npm view failed"));
    expect(await ensureBaseImages(docker, { say, refresh: true, canBootstrap: able })).toEqual({ images: local() });
    expect(said.at(-1)).toMatch(/could not check the local base images against their recipe \(npm view failed\); using them as they are/);
  });

  it("with refresh, leaves official images alone", async () => {
    resolve.mockResolvedValue(official(true));
    await ensureBaseImages(engine("fail").docker, { say, refresh: true, canBootstrap: able });
    expect(bootstrap).not.toHaveBeenCalled();
  });

  it("pulls missing official images where a registry answers, and builds nothing", async () => {
    resolve.mockResolvedValueOnce(official(false)).mockResolvedValueOnce(official(true));
    const { docker, pull } = engine("succeed");
    expect(await ensureBaseImages(docker, { say, canBootstrap: able })).toEqual({ images: official(true) });
    expect(pull.mock.calls.map(([ref]) => ref)).toEqual([OFFICIAL_BASE_IMAGES.debian, OFFICIAL_BASE_IMAGES.node]);
    expect(bootstrap).not.toHaveBeenCalled();
  });

  it("bootstraps when no registry answers, after one pull", async () => {
    resolve.mockResolvedValue(official(false));
    const { docker, pull } = engine("fail");
    expect(await ensureBaseImages(docker, { say, canBootstrap: able })).toEqual({ images: local() });
    expect(pull).toHaveBeenCalledTimes(1);
    expect(bootstrap).toHaveBeenCalledTimes(1);
    expect(said).toContain("no registry answered: building the base images from Debian packages and the npm registry (perstack images bootstrap)");
  });

  it("gives up on a registry that does not answer", async () => {
    resolve.mockResolvedValue(official(false));
    await ensureBaseImages(engine("hang").docker, { say, canBootstrap: able, pullTimeoutMs: 50 });
    expect(said).toContain(`cannot pull ${OFFICIAL_BASE_IMAGES.debian}: no answer within 0.05 s`);
    expect(bootstrap).toHaveBeenCalledTimes(1);
  });

  it("says what to do when it can neither pull nor bootstrap", async () => {
    resolve.mockResolvedValue(official(false));
    const result = await ensureBaseImages(engine("fail").docker, { say, canBootstrap: unable });
    expect(result.problem).toBe(
      'no registry answered and the base images cannot be built here (debootstrap needs root); run "sudo npx perstack images bootstrap" once (see the README, Prerequisites)',
    );
    expect(bootstrap).not.toHaveBeenCalled();
  });

  it("leaves an image named by PERSTACK_BASE_IMAGE_* to the build", async () => {
    const overridden: Images = { ...local(), node: image("node", "registry.example/node:22", false) };
    resolve.mockResolvedValue(overridden);
    const { docker, pull } = engine("fail");
    expect(await ensureBaseImages(docker, { say, canBootstrap: able })).toEqual({ images: overridden });
    expect(pull).not.toHaveBeenCalled();
    expect(bootstrap).not.toHaveBeenCalled();
  });
});
