// Builds the scripted fake model server (test/fake-models) as an image FROM the node base image, for the programs that
// run it as a container of their own: `npm run demo` and `npm run bench` (the e2e tests use testcontainers). Docker's
// layer cache makes a second build a no-op.
//
// Runs under Node's type stripping too (demo.mjs, bench.mjs): erasable TypeScript only.
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import tar from "tar-fs";

const CONTEXT = fileURLToPath(new URL("../fake-models/", import.meta.url));
/** How long one build may take; it is a layer-cache hit after the first. */
const BUILD_BOUND_MS = 10 * 60_000;

/**
 * Builds image `image`, a second time if the first attempt fails: in CI other test files use the same engine at the
 * same moment, and a build stream has ended the process with its promise unsettled (nothing left to wake it).
 */
export async function buildFakeModelImage(docker: Docker, image: string, nodeImage: string): Promise<void> {
  try {
    await buildOnce(docker, image, nodeImage);
  } catch {
    await buildOnce(docker, image, nodeImage);
  }
}

/** One build, settled whatever the stream does: its end, an error, a close without an end, or the bound. */
function buildOnce(docker: Docker, image: string, nodeImage: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    // The timer is also a handle: the process waits for this build rather than exit with it pending.
    const bound = setTimeout(() => settle(new Error(`building the fake model server took more than ${BUILD_BOUND_MS / 60_000} minutes`)), BUILD_BOUND_MS);
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(bound);
      if (error) reject(error);
      else resolve();
    };
    const context = Readable.from(tar.pack(CONTEXT) as unknown as AsyncIterable<Buffer>);
    context.on("error", (error) => settle(new Error(`packing the fake model server's context failed: ${error.message}`)));
    docker.buildImage(context, { t: image, buildargs: { NODE_IMAGE: nodeImage }, rm: true, forcerm: true }).then(
      (stream) => {
        (stream as NodeJS.ReadableStream).on("close", () => setImmediate(() => settle(new Error("the Engine closed the fake model server's build stream before the build ended"))));
        docker.modem.followProgress(stream, (error: Error | null, output: Array<{ error?: string }>) => {
          const failed = error?.message ?? output.find((o) => o.error)?.error;
          settle(failed ? new Error(`building the fake model server failed: ${failed}`) : undefined);
        });
      },
      (error: Error) => settle(new Error(`building the fake model server failed: ${error.message}`)),
    );
  });
}
