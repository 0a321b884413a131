// The scripted fake model server of test/fake-models as a container the benchmark owns: built FROM the node base
// image (Docker's layer cache makes this a no-op after the first time), started with a published port, labelled
// with the benchmark session so cleanup finds it whatever happens.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import type Docker from "dockerode";
import { buildFakeModelImage } from "../test/support/fake-model-image.ts";
import { benchLabels } from "./bench-labels.ts";

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

/** Builds and starts the fake; it is removed with the session's other containers (see BenchSession.cleanup). */
export async function startFake(docker: Docker, nodeImage: string, session: string): Promise<BenchFake> {
  await buildFakeModelImage(docker, IMAGE, nodeImage);
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
