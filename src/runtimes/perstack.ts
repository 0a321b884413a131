// The built-in engine (src/engine) as a runtime: it runs inside the agent container, reads one input file from
// HOME and prints Perstack events as JSON lines, so parsing is validation rather than translation.
import { readFileSync } from "node:fs";
import type { ProviderConfig, ProviderName } from "../config/schema.js";
import { PROVIDER_NAMES } from "../config/schema.js";
import { engineInputSchema, ENGINE_INPUT_HOME_PATH, PROVIDER_HEADERS_ENV, type EngineInput } from "../engine/engine-input.js";
import { providerApiHosts, providerKeyEnv } from "../engine/provider-env.js";
import { perstackEventSchema } from "../model/event-schema.js";
import { fileCheckpointOf } from "../model/event-messages.js";
import { emptyUsage, type CheckpointError, type CheckpointRef, type PerstackEvent, type RunEvent } from "../model/perstack.js";
import { packagePath } from "../package-root.js";
import { compileCacheWarmer, engineContextFiles, ENGINE_IMAGE_DIR } from "./engine-files.js";
import { MessageLog } from "./message-log.js";
import type { RecorderContext } from "./run-recorder.js";
import { parseJsonObject, stderrSummary, str } from "./stream-json.js";
import type { KeyVariable, RuntimeAdapter, RuntimeInvocation, StreamParser } from "./types.js";

const PACKAGE = JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { name: string; version: string };

/** Where the engine is installed in the agent image, and the input file inside the container. */
export const ENGINE_MAIN = `${ENGINE_IMAGE_DIR}/src/engine/main.js`;
const AGENT_HOME = "/home/agent";
const WORKSPACE = "/workspace";

/** Variables the engine cannot run without, per provider (the rest of providerKeyEnv is optional). */
const REQUIRED_KEYS: Record<ProviderName, KeyVariable[]> = {
  anthropic: [{ name: "ANTHROPIC_API_KEY", from: ["ANTHROPIC_API_KEY"] }],
  openai: [{ name: "OPENAI_API_KEY", from: ["OPENAI_API_KEY"] }],
  // Perstack documents GOOGLE_GENERATIVE_AI_API_KEY; users of the gemini CLI have GEMINI_API_KEY.
  google: [{ name: "GOOGLE_GENERATIVE_AI_API_KEY", from: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"] }],
  deepseek: [{ name: "DEEPSEEK_API_KEY", from: ["DEEPSEEK_API_KEY"] }],
  "azure-openai": [{ name: "AZURE_API_KEY", from: ["AZURE_API_KEY"] }],
  "amazon-bedrock": [
    { name: "AWS_ACCESS_KEY_ID", from: ["AWS_ACCESS_KEY_ID"] },
    { name: "AWS_SECRET_ACCESS_KEY", from: ["AWS_SECRET_ACCESS_KEY"] },
  ],
  "google-vertex": [],
  ollama: [],
};

/** Host variables an optional one may also be read from (the engine reads only the first name). */
const OPTIONAL_FROM: Record<string, string[]> = {
  GOOGLE_VERTEX_PROJECT: ["GOOGLE_VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"],
  GOOGLE_VERTEX_LOCATION: ["GOOGLE_VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION"],
};

/** A host path: the gateway reads the file it names on the host (gateway-plan.ts googleCredentials). */
const HOST_PATH_VARIABLES = new Set(["GOOGLE_APPLICATION_CREDENTIALS"]);

/** The SDK's conventional base-URL variables, for one perstack.toml serving every runtime. */
const BASE_URL_ENV: Partial<Record<ProviderName, string>> = {
  anthropic: "ANTHROPIC_BASE_URL",
  openai: "OPENAI_BASE_URL",
  google: "GOOGLE_GEMINI_BASE_URL",
};

export const perstack: RuntimeAdapter = {
  name: "perstack",
  cliPackage: PACKAGE.name,
  cliVersion: PACKAGE.version,
  providers: PROVIDER_NAMES,
  defaultProvider: "anthropic",
  defaultModel: "claude-sonnet-4-5",
  modelVendors: ["anthropic", "google", "openai"],
  baseUrlEnv: (provider) => BASE_URL_ENV[provider.providerName],
  runsExperts: true,
  dockerfilePartial: "perstack.hbs",
  contextFiles: () => [...engineContextFiles(), compileCacheWarmer()],
  keyEnv(provider) {
    const required = REQUIRED_KEYS[provider.providerName];
    const named = new Set(required.flatMap((key) => [key.name, ...key.from]));
    const optional = providerKeyEnv(provider)
      .filter((name) => !named.has(name) && !HOST_PATH_VARIABLES.has(name))
      .map((name) => ({ name, from: OPTIONAL_FROM[name] ?? [name], optional: true }));
    return [...required, ...optional];
  },
  apiHosts(provider) {
    // Only for a plan without the gateway (the engine always has one now): the settings are filled in by then.
    return providerApiHosts(provider);
  },
  configEnv(provider): Record<string, string> {
    const headers = provider.setting?.headers;
    if (!headers || Object.keys(headers).length === 0) return {};
    return { [PROVIDER_HEADERS_ENV]: JSON.stringify(headers) };
  },
  fixedEnv() {
    return {
      // Node's fetch honours HTTP(S)_PROXY only when asked; the proxy is the agent's only way out.
      NODE_USE_ENV_PROXY: "1",
      // The proxy support NODE_USE_ENV_PROXY turns on warns that it is experimental, in the engine and every node
      // skill server: noise in stderr.log and skillStderr events.
      NODE_OPTIONS: "--disable-warning=UNDICI-EHPA",
      PERSTACK_WORKSPACE: WORKSPACE,
      NODE_ENV: "production",
      // The engine waits for the host's start line itself, after its own start-up (engine/main.ts).
      PERSTACK_START_GATE: "engine",
    };
  },
  homeFiles(invocation) {
    return [{ path: ENGINE_INPUT_HOME_PATH, content: `${JSON.stringify(engineInput(invocation), null, 2)}\n` }];
  },
  command(invocation) {
    const argv = ["node", ENGINE_MAIN, `${AGENT_HOME}/${ENGINE_INPUT_HOME_PATH}`];
    // The query on the command line too: an exported sandbox fills it in from ${PERSTACK_QUERY}, as for CLIs.
    const start = invocation.start;
    if (start.kind === "query" || start.kind === "continue") argv.push("--", start.query);
    return argv;
  },
  createParser: (context) => new PerstackStreamParser(context),
};

/** The engine's input file: everything but secrets (header values travel in PROVIDER_HEADERS_ENV). */
export function engineInput(invocation: RuntimeInvocation): EngineInput {
  const input = {
    version: 1,
    jobId: invocation.jobId,
    runId: invocation.runId,
    expertKey: invocation.expert.key,
    experts: Object.fromEntries(invocation.experts.map((expert) => [expert.key, expert])),
    provider: engineProvider(invocation.provider, invocation.baseUrl),
    model: invocation.model,
    ...(invocation.reasoningBudget !== undefined ? { reasoningBudget: invocation.reasoningBudget } : {}),
    maxSteps: invocation.maxSteps,
    stepsBefore: invocation.stepsBefore,
    maxRetries: invocation.maxRetries,
    timeout: invocation.timeout,
    workspace: WORKSPACE,
    runtime: "perstack",
    runtimeVersion: PACKAGE.version,
    start: invocation.start,
  };
  // A bad plan fails on the host, before an image is built.
  return engineInputSchema.parse(input);
}

/** The provider without header values, and with the base URL in force (perstack.toml's or the variable's). */
function engineProvider(provider: ProviderConfig, baseUrl: string | undefined): ProviderConfig {
  const { headers: _headers, ...setting } = provider.setting ?? {};
  void _headers;
  const merged = { ...setting, ...(baseUrl !== undefined ? { baseUrl } : {}) };
  return (Object.keys(merged).length > 0 ? { ...provider, setting: merged } : { providerName: provider.providerName }) as ProviderConfig;
}

const FINAL_EVENTS = new Set(["completeRun", "stopRunByError", "stopRunByExceededMaxSteps", "stopRunByInteractiveTool"]);

/**
 * The engine's stdout: one Perstack event per line, validated; anything else is left to raw.log. The engine prints
 * events as they are recorded (checkpoints by reference); a checkpoint written as a file also brings the messages
 * its run's conversation gained since the run's previous one (appendMessages), which this parser adds to the run's
 * MessageLog and takes off the event.
 */
export class PerstackStreamParser implements StreamParser {
  private lastRootCheckpoint: CheckpointRef | undefined;
  private rootEnded = false;
  private readonly logs = new Map<string, MessageLog>();

  constructor(private readonly context: RecorderContext) {}

  history(runId: string): MessageLog | undefined {
    return this.logs.get(runId);
  }

  line(text: string): PerstackEvent[] {
    if (text.trim() === "") return [];
    const json = parseJsonObject(text);
    // The engine prints nothing but events on stdout: anything else was written there by another process.
    if (!json) throw new Error(`not an engine event: ${JSON.stringify(text.slice(0, 120))}`);
    const type = str(json.type) ?? "(no type)";
    const parsed = perstackEventSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = issue.path.length > 0 ? issue.path.join(".") : "(event)";
      throw new Error(`engine event "${type}" is invalid at ${path}: ${issue.message.replace(/\s+/g, " ")}`);
    }
    const event = parsed.data;
    if (event.jobId !== this.context.jobId) {
      throw new Error(`engine event "${type}" belongs to job ${JSON.stringify(event.jobId)}, not ${this.context.jobId}; ignored`);
    }
    const recorded = this.takeMessages(event);
    if (recorded.runId === this.context.runId) this.track(recorded);
    return [recorded];
  }

  /** The event without its appendMessages, which extend the run's log exactly up to the checkpoint's count. */
  private takeMessages(event: PerstackEvent): PerstackEvent {
    if (event.type === "continueToNextStep" && event.nextCheckpoint.appendMessages) {
      throw new Error(`engine event "continueToNextStep" has appendMessages on its nextCheckpoint; only a checkpoint written as a file brings messages`);
    }
    const file = fileCheckpointOf(event);
    const added = file?.appendMessages;
    if (!file || !added) return event;
    const log = this.logs.get(event.runId) ?? new MessageLog();
    if (file.messagesRef.count !== log.length + added.length) {
      throw new Error(
        `engine event "${event.type}": checkpoint ${file.id} claims ${file.messagesRef.count} messages, but run ${event.runId} had ${log.length} and it adds ${added.length}`,
      );
    }
    log.append(added);
    this.logs.set(event.runId, log);
    const { appendMessages: _added, ...checkpoint } = file;
    void _added;
    return (event.type === "startRun" ? { ...event, initialCheckpoint: checkpoint } : { ...event, checkpoint }) as PerstackEvent;
  }

  end(exit: { exitCode: number; stderrTail: string }): PerstackEvent[] {
    if (this.rootEnded) return [];
    this.rootEnded = true;
    const summary = stderrSummary(exit.stderrTail);
    const error: CheckpointError = {
      name: "EngineExited",
      message: `the engine exited with code ${exit.exitCode}${exit.exitCode === 0 ? " before the run finished" : ""}${summary ? `: ${summary}` : ""}`,
      isRetryable: false,
    };
    const ctx = this.context;
    const last = this.lastRootCheckpoint ?? this.initCheckpoint();
    const id = ctx.newId();
    // The engine may have claimed more than it sent; the file holds what the host has.
    const count = Math.min(last.messagesRef.count, this.logs.get(ctx.runId)?.length ?? 0);
    const checkpoint: CheckpointRef = { ...last, id, status: "stoppedByError", error, messagesRef: { checkpointId: id, count } };
    const event: RunEvent = {
      id: ctx.newId(),
      expertKey: checkpoint.expert.key,
      timestamp: ctx.now(),
      jobId: ctx.jobId,
      runId: ctx.runId,
      stepNumber: checkpoint.stepNumber,
      type: "stopRunByError",
      checkpoint,
      error,
    };
    return [event];
  }

  private track(event: PerstackEvent): void {
    if (FINAL_EVENTS.has(event.type)) this.rootEnded = true;
    switch (event.type) {
      case "startRun":
        this.lastRootCheckpoint = event.initialCheckpoint;
        break;
      case "continueToNextStep":
        this.lastRootCheckpoint = event.nextCheckpoint;
        break;
      case "stopRunByDelegate":
      case "completeRun":
      case "stopRunByError":
      case "stopRunByExceededMaxSteps":
      case "stopRunByInteractiveTool":
        this.lastRootCheckpoint = event.checkpoint;
        break;
      default:
        break;
    }
  }

  /** The run as it began, when the engine died before reporting anything. */
  private initCheckpoint(): CheckpointRef {
    const ctx = this.context;
    let log = this.logs.get(ctx.runId);
    if (!log) {
      log = new MessageLog();
      log.append([
        { type: "instructionMessage", id: ctx.newId(), contents: [{ type: "textPart", text: ctx.instruction }] },
        { type: "userMessage", id: ctx.newId(), contents: [{ type: "textPart", text: ctx.query }] },
      ]);
      this.logs.set(ctx.runId, log);
    }
    const id = ctx.newId();
    return {
      id,
      jobId: ctx.jobId,
      runId: ctx.runId,
      status: "init",
      stepNumber: 1,
      messagesRef: { checkpointId: id, count: log.length },
      expert: ctx.expert,
      usage: emptyUsage(),
      metadata: { runtime: ctx.runtime, ...ctx.metadata },
    };
  }
}
