// Base images for `npm run demo` and `npm test` (vitest's global setup), so that on a fresh machine the README's
// commands do all the set-up. Present images are used as they are. Missing official images are pulled, which is
// what the first build would do anyway; where no registry answers, and this process can run the offline bootstrap
// (root, debootstrap), it builds the local stand-ins as `perstack images bootstrap` does.
//
// The demo runs this file with Node's type stripping, so it imports the built product from dist/ and uses erasable
// TypeScript only.
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import type Docker from "dockerode";
import type { BaseImageRole, ResolvedBaseImage } from "../../dist/src/sandbox/base-images.js";
import {
  BASE_IMAGE_ROLES,
  bootstrapBaseImages,
  extraCaCertFilesFromEnv,
  LOCAL_BASE_IMAGES,
  OFFICIAL_BASE_IMAGES,
  overridesFromEnv,
  resolveBaseImages,
} from "../../dist/src/sandbox/base-images.js";

export interface EnsureBaseImagesOptions {
  say: (message: string) => void;
  /**
   * When local stand-ins are in use, run the (idempotent) bootstrap anyway, so they match their recipe: about a
   * second of registry look-ups when they do. The test suite wants this; the demo does not.
   */
  refresh?: boolean;
  /** How long a pull may wait for the registry's first answer. */
  pullTimeoutMs?: number;
  /** Whether the offline bootstrap can run here; default: root with debootstrap installed. */
  canBootstrap?: () => Bootstrapper;
}

export type Bootstrapper = { ok: true } | { ok: false; reason: string };

export interface EnsuredBaseImages {
  images: Record<BaseImageRole, ResolvedBaseImage>;
  /** Why an official base image is missing and cannot be made here, and what to do; absent otherwise. */
  problem?: string;
}

export async function ensureBaseImages(docker: Docker, options: EnsureBaseImagesOptions): Promise<EnsuredBaseImages> {
  const { say } = options;
  const overrides = overridesFromEnv();
  let images = await resolveBaseImages(docker, overrides);
  const bootstrapper = (options.canBootstrap ?? canBootstrap)();

  if (BASE_IMAGE_ROLES.every((role) => images[role].id)) {
    const localInUse = BASE_IMAGE_ROLES.some((role) => images[role].ref === LOCAL_BASE_IMAGES[role]);
    if (options.refresh && localInUse && bootstrapper.ok) {
      try {
        return { images: await bootstrap(docker, say) };
      } catch (error) {
        say(`could not check the local base images against their recipe (${(error as Error).message}); using them as they are`);
      }
    }
    return { images };
  }

  // An image named by PERSTACK_BASE_IMAGE_* is the user's to provide; the official ones may come from a registry.
  const pullable = BASE_IMAGE_ROLES.filter((role) => !images[role].id && images[role].ref === OFFICIAL_BASE_IMAGES[role]);
  for (const role of pullable) {
    const ref = images[role].ref;
    say(`${ref} is not here yet: pulling it`);
    try {
      await pull(docker, ref, options.pullTimeoutMs ?? 30_000);
      say(`pulled ${ref}`);
    } catch (error) {
      say(`cannot pull ${ref}: ${(error as Error).message}`);
      break;
    }
  }
  images = await resolveBaseImages(docker, overrides);
  const missing = BASE_IMAGE_ROLES.filter((role) => !images[role].id);
  if (missing.length === 0) return { images };

  // An image named by PERSTACK_BASE_IMAGE_* that is not here is left to the build, which pulls it, as a run would.
  if (!missing.some((role) => images[role].ref === OFFICIAL_BASE_IMAGES[role])) return { images };
  if (!bootstrapper.ok) {
    return {
      images,
      problem:
        `no registry answered and the base images cannot be built here (${bootstrapper.reason}); ` +
        'run "sudo npx perstack images bootstrap" once (see the README, Prerequisites)',
    };
  }
  say("no registry answered: building the base images from Debian packages and the npm registry (perstack images bootstrap)");
  return { images: await bootstrap(docker, say) };
}

function bootstrap(docker: Docker, say: (message: string) => void): Promise<Record<BaseImageRole, ResolvedBaseImage>> {
  return bootstrapBaseImages(docker, { caCertFiles: extraCaCertFilesFromEnv(), onProgress: say });
}

/** The bootstrap's own prerequisites (see bootstrapBaseImages): root, and debootstrap on the PATH or in an sbin. */
function canBootstrap(): Bootstrapper {
  if (process.getuid?.() !== 0) return { ok: false, reason: "debootstrap needs root" };
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin"].filter((dir) => dir !== "");
  if (!dirs.some((dir) => existsSync(join(dir, "debootstrap")))) return { ok: false, reason: "debootstrap is not installed" };
  return { ok: true };
}

/** Pulls `ref`, giving up when the registry has not answered within `timeoutMs` (a registry behind a firewall). */
async function pull(docker: Docker, ref: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stream = await Promise.race([
    docker.pull(ref) as Promise<NodeJS.ReadableStream>,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
      const failed = error?.message ?? output.find((event) => event.error)?.error;
      if (failed) reject(new Error(failed));
      else resolve();
    }),
  );
}
