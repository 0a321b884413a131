// Builds an ImagePlan with the Engine API from a tar-fs context, unless an image with its content-hash tag
// already exists: a second run with the same inputs builds nothing.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import type Docker from "dockerode";
import { ImageBuildError } from "../errors.js";
import type { ImagePlan } from "../plan/sandbox-plan.js";
import { imageExists } from "./docker-client.js";

export interface BuildProgress {
  image: ImagePlan;
  message: string;
  /** 0..1 from the builder's "Step N/M" lines. */
  progress?: number;
}

export interface EnsureImageResult {
  ref: string;
  built: boolean;
}

export async function ensureImage(
  docker: Docker,
  image: ImagePlan,
  onProgress: (progress: BuildProgress) => void,
  signal?: AbortSignal,
): Promise<EnsureImageResult> {
  if (await imageExists(docker, image.ref)) return { ref: image.ref, built: false };
  const dir = await mkdtemp(join(tmpdir(), "perstack-build-"));
  try {
    await writeFile(join(dir, "Dockerfile"), image.dockerfile);
    for (const file of image.contextFiles) {
      // The engine's files keep their directory layout (engine/src/...).
      await mkdir(dirname(join(dir, file.path)), { recursive: true });
      await writeFile(join(dir, file.path), file.content, { mode: 0o644 });
    }
    onProgress({ image, message: `building ${image.ref}`, progress: 0 });
    // tar-fs 3 packs with streamx; Readable.from gives dockerode the Node stream it pipes into the request.
    // Loaded only when an image is built: most runs reuse their images.
    const { default: tar } = await import("tar-fs");
    const context = Readable.from(tar.pack(dir) as unknown as AsyncIterable<Buffer>);
    // Aborting the request makes the engine cancel the build (the legacy builder stops with the connection).
    const stream = await docker.buildImage(context, { t: image.ref, rm: true, forcerm: true, ...(signal ? { abortSignal: signal } : {}) });
    const tail: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        reject(new ImageBuildError(`building ${image.ref} was interrupted`));
      };
      if (signal?.aborted) onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      docker.modem.followProgress(
        stream,
        (error: Error | null, output: Array<{ error?: string }>) => {
          signal?.removeEventListener("abort", onAbort);
          if (signal?.aborted) return;
          const failed = error?.message ?? output.find((item) => item.error)?.error;
          if (failed) reject(new ImageBuildError(buildFailure(image, failed, tail)));
          else resolve();
        },
        (event: { stream?: string; status?: string; error?: string }) => {
          const text = (event.stream ?? event.status ?? "").trim();
          if (!text) return;
          for (const line of text.split("\n")) {
            tail.push(line);
            if (tail.length > 15) tail.shift();
          }
          const step = /^Step (\d+)\/(\d+) : (.*)$/.exec(text);
          if (step) {
            onProgress({
              image,
              message: `step ${step[1]}/${step[2]}: ${step[3]!.slice(0, 120)}`,
              progress: Number(step[1]) / Number(step[2]),
            });
          }
          // Other builder output (package manager logs) is kept for the error message only.
        },
      );
    });
    onProgress({ image, message: `built ${image.ref}`, progress: 1 });
    return { ref: image.ref, built: true };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function buildFailure(image: ImagePlan, error: string, tail: string[]): string {
  const last = tail.filter((l) => l.trim()).slice(-3).join(" | ");
  const hint = /no space left on device/i.test(tail.join("\n") + error)
    ? `; the Docker engine's disk is full: free space with "perstack images prune" and "docker system prune", then run again`
    : /SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER|unable to get local issuer/i.test(tail.join("\n") + error)
    ? "; behind a TLS-intercepting proxy, pass --ca-cert <file> or set PERSTACK_EXTRA_CA_CERTS"
    : /pull access denied|manifest unknown|not found: manifest|connection refused|no such host/i.test(error)
      ? `; if no registry is reachable, run "perstack images bootstrap" first`
      : "";
  return `building ${image.ref} failed: ${error.trim()}${last ? ` (last output: ${last})` : ""}${hint}`;
}
