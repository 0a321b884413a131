// The fake model servers (Anthropic, Gemini, OpenAI Responses) as project containers (testcontainers), published
// on the host so runs reach them the way users reach a local model server: http://host.docker.internal:<port>,
// through the run's proxy. One image (test/fake-models) serves all three protocols; each handle drives and reads
// only its own protocol through the `?protocol=<kind>` control endpoints.
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import { GenericContainer, type StartedTestContainer } from "testcontainers";
import { resolveBaseImages, overridesFromEnv } from "../../src/sandbox/base-images.js";

process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";

export type FakeKind = "anthropic" | "gemini" | "openai" | "chat" | "ollama" | "bedrock" | "vertex";
const CONTEXT = fileURLToPath(new URL("../fake-models/", import.meta.url));
const IMAGE = "perstack-test/fake-models:latest";

export interface FakeStep {
  text?: string;
  thinking?: string;
  toolUse?: Array<{ name: string; input: Record<string, unknown> }>;
  error?: { status: number; type: string; message: string };
  times?: number;
  shouldRetry?: boolean;
  /** Only for conversations whose first user message contains this (see test/fake-models/script.ts Step). */
  forQuery?: string;
}

export interface RecordedRequest {
  method: string;
  url: string;
  body: unknown;
  kind: "main" | "side" | "other";
  turn?: number;
  /** Main requests: the conversation's first user text, and the forQuery script that answered (if any). */
  firstUserText?: string;
  forQuery?: string;
  /** Main requests answered with a reply: the usage the fake reported (vendor shape + normalized). */
  usage?: { vendor: Record<string, unknown>; inputTokens: number; outputTokens: number };
  /** Gemini, Vertex, Bedrock: the model from the path. */
  model?: string;
  /** Bedrock ("sigv4" | "bearer" | "none") and Vertex ("issued-token" | "expired-token" | "unknown-bearer" | "none"). */
  auth?: string;
  /** Bedrock, SigV4-signed requests: the Authorization header's credential scope and signed headers. */
  sigv4?: { accessKeyId: string; date: string; region: string; service: string; signedHeaders: string[] };
}

export interface FakeModel {
  /** For the host (tests): http://127.0.0.1:<port>. */
  hostUrl: string;
  /** For perstack.toml: http://host.docker.internal:<port>. */
  sandboxUrl: string;
  port: number;
  script(steps: FakeStep[]): Promise<void>;
  requests(): Promise<RecordedRequest[]>;
  /** A handle for another protocol of the same container (the protocols share its port); stop() stops the container. */
  as(kind: FakeKind): FakeModel;
  /**
   * Registers the public key (of a service-account key) the container's OAuth token endpoint (`<url>/token`, the
   * key file's token_uri) verifies assertions with; see test/fake-models/oauth.ts.
   */
  registerOAuthKey(key: { publicKeyPem: string; clientEmail?: string }): Promise<void>;
  stop(): Promise<void>;
}

let built: Promise<void> | undefined;

async function buildImage(docker: Docker): Promise<void> {
  const base = await resolveBaseImages(docker, overridesFromEnv());
  // Docker's layer cache makes this a no-op after the first build.
  await GenericContainer.fromDockerfile(CONTEXT).withBuildArgs({ NODE_IMAGE: base.node.ref }).withCache(true).build(IMAGE, { deleteOnExit: false });
}

export async function startFakeModel(docker: Docker, kind: FakeKind): Promise<FakeModel> {
  built ??= buildImage(docker);
  await built;
  const container: StartedTestContainer = await new GenericContainer(IMAGE)
    .withExposedPorts(8080)
    .withLabels({ "perstack.test": `fake-${kind}` })
    .start();
  const port = container.getMappedPort(8080);
  return fakeHandle(container, port, kind);
}

function fakeHandle(container: StartedTestContainer, port: number, kind: FakeKind): FakeModel {
  const hostUrl = `http://127.0.0.1:${port}`;
  return {
    hostUrl,
    sandboxUrl: `http://host.docker.internal:${port}`,
    port,
    async script(steps) {
      const response = await fetch(`${hostUrl}/_script?protocol=${kind}`, { method: "POST", body: JSON.stringify({ steps }), headers: { "content-type": "application/json" } });
      if (!response.ok) throw new Error(`fake rejected the script: ${response.status} ${await response.text()}`);
    },
    async requests() {
      return (await (await fetch(`${hostUrl}/_requests?protocol=${kind}`)).json()) as RecordedRequest[];
    },
    as(other) {
      return fakeHandle(container, port, other);
    },
    async registerOAuthKey(key) {
      const response = await fetch(`${hostUrl}/_oauth`, { method: "POST", body: JSON.stringify(key), headers: { "content-type": "application/json" } });
      if (!response.ok) throw new Error(`fake rejected the OAuth key: ${response.status} ${await response.text()}`);
    },
    async stop() {
      await container.stop({ remove: true, removeVolumes: true });
    },
  };
}

export const startFakeAnthropic = (docker: Docker) => startFakeModel(docker, "anthropic");
/** The Anthropic fake, the one the claude-code tests use. */
export type FakeAnthropic = FakeModel;

/** The tool_result texts the CLI sent back to the model, in order (main conversation only). */
export function toolResultsSent(requests: RecordedRequest[]): string[] {
  const main = requests.filter((r) => r.kind === "main");
  const last = main.at(-1)?.body as { messages?: Array<{ role: string; content: unknown }> } | undefined;
  const texts: string[] = [];
  for (const message of last?.messages ?? []) {
    if (message.role !== "user" || !Array.isArray(message.content)) continue;
    for (const block of message.content as Array<{ type?: string; content?: unknown }>) {
      if (block.type !== "tool_result") continue;
      const content = block.content;
      texts.push(
        typeof content === "string"
          ? content
          : Array.isArray(content)
            ? content.map((c: { text?: string }) => c.text ?? "").join("")
            : JSON.stringify(content),
      );
    }
  }
  return texts;
}

const STANDIN_IMAGE = "perstack-test/node-cursor-standin:latest";

/**
 * A node base image with the cursor-agent stand-in; runs of the cursor runtime built FROM it (via
 * PERSTACK_BASE_IMAGE_NODE) use the stand-in instead of Cursor's installer.
 */
export async function cursorStandinBase(docker: Docker): Promise<string> {
  const base = await resolveBaseImages(docker, overridesFromEnv());
  await GenericContainer.fromDockerfile(fileURLToPath(new URL("../cursor-standin/", import.meta.url)))
    .withBuildArgs({ NODE_IMAGE: base.node.ref })
    .withCache(true)
    .build(STANDIN_IMAGE, { deleteOnExit: false });
  return STANDIN_IMAGE;
}
