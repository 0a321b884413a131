// The scripted fake model server of test/fake-models as a container the benchmark owns: built FROM the node base
// image (Docker's layer cache makes this a no-op after the first time), started with a published port, labelled
// with the benchmark session so cleanup finds it whatever happens.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import tar from "tar-fs";
import { benchLabels } from "./bench-labels.ts";

const CONTEXT = fileURLToPath(new URL("../test/fake-models/", import.meta.url));
const IMAGE = "perstack-bench/fake-models:latest";

export interface FakeStep {
  text?: string;
  toolUse?: Array<{ name: string; input: Record<string, unknown> }>;
  /** Only for conversations whose first user message contains this (test/fake-models/script.ts). */
  forQuery?: string;
}

export interface BenchFake {
  /** For the host: http://127.0.0.1:<port>. */
  hostUrl: string;
  /** For perstack.toml and bare containers: http://host.docker.internal:<port>. */
  sandboxUrl: string;
  script(steps: FakeStep[]): Promise<void>;
}

/** How long one build of the fake may take; it is a layer-cache hit after the first. */
const BUILD_BOUND_MS = 10 * 60_000;

/**
 * Builds the fake, a second time if the first attempt fails: in CI other test files use the same engine at the same
 * moment, and a build stream has once ended the process with its promise unsettled (nothing left to wake it).
 */
async function buildFake(docker: Docker, nodeImage: string): Promise<void> {
  try {
    await buildFakeOnce(docker, nodeImage);
  } catch {
    await buildFakeOnce(docker, nodeImage);
  }
}

/** One build, settled whatever the stream does: its end, an error, a close without an end, or the bound. */
function buildFakeOnce(docker: Docker, nodeImage: string): Promise<void> {
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
    docker.buildImage(context, { t: IMAGE, buildargs: { NODE_IMAGE: nodeImage }, rm: true, forcerm: true }).then(
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

/** Builds and starts the fake; it is removed with the session's other containers (see BenchSession.cleanup). */
export async function startFake(docker: Docker, nodeImage: string, session: string): Promise<BenchFake> {
  await buildFake(docker, nodeImage);
  const container = await docker.createContainer({
    Image: IMAGE,
    name: `perstack-bench-${session}-fake`,
    Labels: benchLabels(session),
    ExposedPorts: { "8080/tcp": {} },
    HostConfig: { PortBindings: { "8080/tcp": [{ HostPort: "" }] } },
  });
  await container.start();
  const info = await container.inspect();
  const port = Number(info.NetworkSettings.Ports["8080/tcp"]?.[0]?.HostPort);
  const hostUrl = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    try {
      if ((await fetch(`${hostUrl}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (attempt >= 100) throw new Error(`the fake model server did not answer on ${hostUrl} within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    hostUrl,
    sandboxUrl: `http://host.docker.internal:${port}`,
    async script(steps) {
      const response = await fetch(`${hostUrl}/_script?protocol=anthropic`, {
        method: "POST",
        body: JSON.stringify({ steps }),
        headers: { "content-type": "application/json" },
      });
      if (!response.ok) throw new Error(`the fake model server refused its script: ${response.status} ${await response.text()}`);
    },
  };
}
