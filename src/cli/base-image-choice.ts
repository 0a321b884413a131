// The Docker engine and the base images a command plans with: loaded by the commands that need them only, since
// the Docker client is heavy to load.
import type Docker from "dockerode";
import type { BaseImage, BaseImageRole } from "../plan/sandbox-plan.js";
import { connectDocker } from "../sandbox/docker-client.js";
import { OFFICIAL_BASE_IMAGES, overridesFromEnv, resolveBaseImages } from "../sandbox/base-images.js";

const baseImageOverrides = overridesFromEnv;

/** Base images without Docker (for --dry-run and export when no engine answers): overrides, else official. */
export function offlineBaseImages(env: NodeJS.ProcessEnv): Record<BaseImageRole, BaseImage> {
  const overrides = baseImageOverrides(env);
  return {
    debian: { role: "debian", ref: overrides.debian ?? OFFICIAL_BASE_IMAGES.debian },
    node: { role: "node", ref: overrides.node ?? OFFICIAL_BASE_IMAGES.node },
  };
}

/**
 * The engine and the base images in force. A run needs the engine; --dry-run and export only plan, so without an
 * engine they fall back to the overrides or the official images.
 */
export async function baseImagesFor(needDocker: boolean) {
  let docker: Docker;
  try {
    docker = await connectDocker();
  } catch (error) {
    if (needDocker) throw error;
    return { docker: undefined, baseImages: offlineBaseImages(process.env) };
  }
  return { docker, baseImages: await resolveBaseImages(docker, baseImageOverrides(process.env)) };
}
