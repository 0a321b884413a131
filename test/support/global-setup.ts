// vitest's global setup: before any test file runs, make sure the base images exist (pulled, or bootstrapped
// offline where no registry answers), so `npm test` on a fresh machine needs no manual `perstack images bootstrap`.
// Without a Docker engine it does nothing: the Docker-backed tests then skip, or fail in CI, and say why.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { inCI, probeDocker } from "./docker.js";

const BUILT_PRODUCT = fileURLToPath(new URL("../../dist/src/sandbox/base-images.js", import.meta.url));

export default async function setup(): Promise<void> {
  const probe = await probeDocker();
  if (!("docker" in probe)) return;
  let said = 0;
  const say = (message: string) => {
    said++;
    console.log(`[base images] ${message}`);
  };
  const fail = (problem: string) => {
    if (inCI()) throw new Error(`${problem} (CI=${process.env.CI} needs them for the Docker-backed tests)`);
    console.warn(`[base images] ${problem}; the Docker-backed tests that build images will fail`);
  };
  if (!existsSync(BUILT_PRODUCT)) {
    fail("dist/ is missing: run npm run build first (npm test does)");
    return;
  }
  // Loaded only now: it imports the built product.
  const { ensureBaseImages } = await import("./ensure-base-images.ts");
  const { images, problem } = await ensureBaseImages(probe.docker, { say, refresh: true });
  if (problem) fail(problem);
  else if (said === 0) say(`using ${images.debian.ref} and ${images.node.ref}`);
}
