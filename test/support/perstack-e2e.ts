// Shared pieces of the `--runtime perstack` end-to-end tests: perstack.toml for a fake model container, the
// fake's request log read per conversation, the usage it reported, and the tool results the engine sent back.
import { rmSync } from "node:fs";
import type Docker from "dockerode";
import { afterAll, beforeAll } from "vitest";
import { makeWorkspace } from "./cli.js";
import { startFakeModel, type FakeKind, type FakeModel, type RecordedRequest } from "./fake-model-container.js";

export type PerstackProvider = "anthropic" | "openai" | "google";

/** The fake protocol, model and key variable for each provider the engine supports against the fakes. */
export const PROVIDERS: Record<PerstackProvider, { fake: FakeKind; model: string; keyEnv: string }> = {
  anthropic: { fake: "anthropic", model: "claude-sonnet-4-5", keyEnv: "ANTHROPIC_API_KEY" },
  openai: { fake: "openai", model: "gpt-5", keyEnv: "OPENAI_API_KEY" },
  google: { fake: "gemini", model: "gemini-2.5-pro", keyEnv: "GOOGLE_GENERATIVE_AI_API_KEY" },
};

export interface TomlOptions {
  provider?: PerstackProvider;
  baseUrl: string;
  /** Top-level lines (maxSteps, maxRetries, ...). */
  top?: string;
  /** Expert tables, written as is. */
  experts: string;
}

export function perstackToml(options: TomlOptions): string {
  const provider = options.provider ?? "anthropic";
  return `runtime = "perstack"
model = "${PROVIDERS[provider].model}"
${options.top ?? ""}
[provider]
providerName = "${provider}"
[provider.setting]
baseUrl = "${options.baseUrl}"

${options.experts}
`;
}

/**
 * The skills of an expert that works in the workspace and asks the user: the base skill (declared, since an expert
 * with skills gets no default one) and an interactive `askColor` tool.
 */
export function baseAndAskSkills(expertKey: string): string {
  return `[experts."${expertKey}".skills."@perstack/base"]
type = "mcpStdioSkill"
description = "Files, shell and completion"
command = "npx"
packageName = "@perstack/base"
${askSkill(expertKey)}`;
}

/** An interactive skill with one tool, `askColor`: the expert stops and waits for the user's answer. */
export function askSkill(expertKey: string): string {
  return `[experts."${expertKey}".skills."ask"]
type = "interactiveSkill"
description = "Questions for the user"
[experts."${expertKey}".skills."ask".tools."askColor"]
description = "Ask the user which color they want"
inputJsonSchema = '{"type":"object","properties":{"question":{"type":"string"}},"required":["question"]}'
`;
}

export function keyEnv(provider: PerstackProvider = "anthropic"): Record<string, string> {
  return { [PROVIDERS[provider].keyEnv]: "fake-key-e2e" };
}

/** Main-conversation requests, optionally only those answered by one forQuery script (null: the default script). */
export function mainRequests(requests: RecordedRequest[], forQuery?: string | null): RecordedRequest[] {
  return requests.filter((r) => r.kind === "main" && (forQuery === undefined || (r.forQuery ?? null) === forQuery));
}

/** What the fake reported across the given requests (errors report nothing). */
export function reportedUsage(requests: RecordedRequest[]): { inputTokens: number; outputTokens: number } {
  const main = mainRequests(requests);
  return {
    inputTokens: main.reduce((sum, r) => sum + (r.usage?.inputTokens ?? 0), 0),
    outputTokens: main.reduce((sum, r) => sum + (r.usage?.outputTokens ?? 0), 0),
  };
}

export interface SentToolResult {
  text: string;
  isError: boolean;
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((c: { text?: string }) => c.text ?? JSON.stringify(c)).join("");
  return JSON.stringify(content);
}

/** The tool results one request carried back to the model, in order, whatever the protocol. */
export function toolResultsIn(request: RecordedRequest | undefined): SentToolResult[] {
  const body = request?.body as Record<string, unknown> | undefined;
  if (!body) return [];
  const out: SentToolResult[] = [];
  if (Array.isArray(body.messages)) {
    for (const message of body.messages as Array<{ role: string; content: unknown }>) {
      if (!Array.isArray(message.content)) continue;
      for (const block of message.content as Array<{ type?: string; content?: unknown; is_error?: boolean }>) {
        if (block.type === "tool_result") out.push({ text: textOf(block.content), isError: block.is_error === true });
      }
    }
  } else if (Array.isArray(body.input)) {
    for (const item of body.input as Array<{ type?: string; output?: unknown }>) {
      if (item.type === "function_call_output") out.push({ text: textOf(item.output), isError: false });
    }
  } else if (Array.isArray(body.contents)) {
    for (const content of body.contents as Array<{ parts?: Array<{ functionResponse?: { response?: unknown } }> }>) {
      for (const part of content.parts ?? []) {
        if (part.functionResponse) out.push({ text: JSON.stringify(part.functionResponse.response), isError: false });
      }
    }
  }
  return out;
}

/** The tool names a request offered the model, whatever the protocol. */
export function toolNamesIn(request: RecordedRequest | undefined): string[] {
  const body = request?.body as { tools?: Array<Record<string, unknown>> } | undefined;
  const names: string[] = [];
  for (const tool of body?.tools ?? []) {
    if (typeof tool.name === "string") names.push(tool.name);
    const declarations = tool.functionDeclarations;
    if (Array.isArray(declarations)) for (const d of declarations as Array<{ name?: string }>) if (d.name) names.push(d.name);
  }
  return names;
}

/** Events of a JSON-lines stdout (`--json`). */
export function jsonLines(stdout: string): Array<{ type: string; [key: string]: unknown }> {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { type: string; [key: string]: unknown });
}

/**
 * One fake model container for a describe block, and the workspaces its tests make: registers the beforeAll that
 * starts the container and the afterAll that stops it and removes the workspaces.
 */
export function fakeModelSuite(engine: Docker, prefix: string): {
  readonly fake: FakeModel;
  workspace(toml: string): string;
  /** Removes this directory too when the block is done. */
  removeAfterwards(dir: string): void;
} {
  let fake: FakeModel | undefined;
  const dirs: string[] = [];
  beforeAll(async () => {
    fake = await startFakeModel(engine, "anthropic");
  }, 300_000);
  afterAll(async () => {
    await fake?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get fake(): FakeModel {
      if (!fake) throw new Error("the fake model container has not started");
      return fake;
    },
    workspace(toml: string): string {
      const dir = makeWorkspace(toml, prefix);
      dirs.push(dir);
      return dir;
    },
    removeAfterwards(dir: string): void {
      dirs.push(dir);
    },
  };
}
