// One invocation of the engine for a job: sets up the model, the step budget and the skill environments, turns
// the input's `start` into the first run (fresh query, continuation, interactive answer or resume), and runs
// delegated experts as child runs of the same job.
import { realpath } from "node:fs/promises";
import type { LanguageModel } from "ai";
import type { Checkpoint, Message, ToolCallPart } from "../model/perstack.js";
import type { EngineExpert, EngineInput } from "./engine-input.js";
import { PROVIDER_HEADERS_ENV } from "./engine-input.js";
import { newId, type EventSink } from "./event-sink.js";
import { composeExpertPrompt } from "./expert-prompt.js";
import { ExpertRun, StepBudget, type ChildRequest, type JobContext, type RunResult, type RunStart } from "./expert-run.js";
import { createLanguageModel } from "./providers.js";
import { INHERITED_ENV_VARS, type SkillSpec } from "./skills/skill-manager.js";
import { emptyUsage } from "../model/perstack.js";

/** What a skill server may see of the engine's environment besides its own requiredEnv: proxy and CA settings. */
const PASS_THROUGH_ENV = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "NODE_USE_ENV_PROXY",
  "NODE_OPTIONS",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "NPM_CONFIG_CAFILE",
];

export interface EngineDeps {
  sink: EventSink;
  env: NodeJS.ProcessEnv;
  createModel?: (input: EngineInput, env: NodeJS.ProcessEnv) => LanguageModel | Promise<LanguageModel>;
  sleep?: (ms: number) => Promise<void>;
  /**
   * Resolves once the host says the proxy and the gateway are up (main.ts reads its line on stdin). Until then the
   * engine loads, reads its input and starts its local skills, but calls no model and starts no other skill.
   * Default: at once.
   */
  networkReady?: Promise<void>;
}

export class EngineInputError extends Error {
  override name = "EngineInputError";
}

export async function runEngineJob(input: EngineInput, deps: EngineDeps): Promise<RunResult> {
  const { sink } = deps;
  sink.runtimeEvent(input.runId, {
    type: "initializeRuntime",
    runtime: input.runtime,
    runtimeVersion: input.runtimeVersion,
    model: input.model,
  });
  const metadata = { runtime: input.runtime, runtimeVersion: input.runtimeVersion, model: input.model, provider: input.provider.providerName };

  let first: RunStart;
  let model: LanguageModel | undefined;
  let setupError: Error | undefined;
  try {
    first = firstRun(input);
  } catch (error) {
    // Still a run: the failure is recorded like any other, against a fresh conversation.
    setupError = error as Error;
    first = freshRun(input, input.expertKey, input.start.kind === "query" ? input.start.query : "");
  }
  try {
    model = await (deps.createModel ?? defaultModel)(input, deps.env);
  } catch (error) {
    setupError ??= error as Error;
  }

  const resumable = resumableDelegates(input);
  const context: JobContext = {
    input,
    sink,
    model: model as LanguageModel,
    budget: new StepBudget(Math.max(0, input.maxSteps - input.stepsBefore)),
    skillSpecs: (expert) => skillSpecs(expert, input, deps),
    baseSkillNames: (expert) => new Set(expert.skills.filter((s) => s.type === "base").map((s) => s.name)),
    startChild: (request: ChildRequest) => {
      const waiting = resumable.get(request.delegatedBy.toolCallId);
      if (waiting) {
        resumable.delete(request.delegatedBy.toolCallId);
        return new ExpertRun(context, { ...resumedDelegate(input, waiting), runId: request.runId, delegatedBy: request.delegatedBy }).run();
      }
      const expert = input.experts[request.expertKey]!;
      return new ExpertRun(context, { ...freshRun(input, expert.key, request.query), runId: request.runId, delegatedBy: request.delegatedBy }).run();
    },
    isResumedDelegate: (toolCallId) => resumable.has(toolCallId),
    metadata,
    networkReady: deps.networkReady ?? Promise.resolve(),
    ...(deps.sleep ? { sleep: deps.sleep } : {}),
  };
  if (setupError) return failedRun(context, first, setupError);
  return new ExpertRun(context, first).run();
}

function defaultModel(input: EngineInput, env: NodeJS.ProcessEnv): Promise<LanguageModel> {
  const headers = readHeaders(env);
  const provider = headers ? { ...input.provider, setting: { ...input.provider.setting, headers } } : input.provider;
  return createLanguageModel(provider as EngineInput["provider"], input.model, env);
}

function readHeaders(env: NodeJS.ProcessEnv): Record<string, string> | undefined {
  const raw = env[PROVIDER_HEADERS_ENV];
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, string>;
  } catch {
    // fall through
  }
  throw new EngineInputError(`${PROVIDER_HEADERS_ENV} is not a JSON object of header names to values`);
}

/** A run that fails at once, so a setup problem (missing key, bad checkpoint) ends as a recorded stopRunByError. */
async function failedRun(context: JobContext, start: RunStart, error: Error): Promise<RunResult> {
  const run = new ExpertRun({ ...context, skillSpecs: () => [] }, start);
  return run.failAtStart({ name: error.name || "EngineError", message: error.message, isRetryable: false });
}

function expertOf(input: EngineInput, key: string): EngineExpert {
  const expert = input.experts[key];
  if (!expert) throw new EngineInputError(`expert "${key}" is not in the engine input (known: ${Object.keys(input.experts).join(", ")})`);
  return expert;
}

function instructionMessage(expert: EngineExpert): Message {
  return { type: "instructionMessage", id: newId(), contents: [{ type: "textPart", text: composeExpertPrompt(expert) }] };
}

function userMessage(text: string): Message {
  return { type: "userMessage", id: newId(), contents: [{ type: "textPart", text }] };
}

function freshRun(input: EngineInput, expertKey: string, query: string): RunStart {
  const expert = expertOf(input, expertKey);
  const messages = [instructionMessage(expert), userMessage(query)];
  return { runId: input.runId, expert, messages, inputMessages: messages, stepNumber: 1, usage: emptyUsage() };
}

/** The first run of this invocation, from `start`. */
export function firstRun(input: EngineInput): RunStart {
  const start = input.start;
  if (start.kind === "query") return freshRun(input, input.expertKey, start.query);
  const checkpoint = start.checkpoint;
  const expert = expertOf(input, checkpoint.expert.key);
  // The expert's current definition applies: its instruction replaces the one the checkpoint was made with.
  const messages = checkpoint.messages.map((m) => (m.type === "instructionMessage" ? instructionMessage(expert) : m));
  const base = { runId: input.runId, expert, usage: checkpoint.usage };
  const open = openCallIds(messages, checkpoint.partialToolResults ?? []);

  switch (start.kind) {
    case "continue": {
      const added: Message[] = [];
      if (open.length > 0) {
        // Calls the old run never answered get a result, so the conversation stays valid for every provider.
        const results = new Map((checkpoint.partialToolResults ?? []).map((r) => [r.id, r]));
        added.push({
          type: "toolMessage",
          id: newId(),
          contents: lastCalls(messages).map((call) => ({
            type: "toolResultPart" as const,
            toolCallId: call.toolCallId,
            toolName: call.toolName,
            contents: results.get(call.toolCallId)?.result ?? [{ type: "textPart" as const, text: "no result: the job was continued with a new query instead" }],
            ...(results.has(call.toolCallId) && !results.get(call.toolCallId)!.isError ? {} : { isError: true }),
          })),
        });
      }
      added.push(userMessage(start.query));
      return { ...base, messages: [...messages, ...added], inputMessages: added, stepNumber: checkpoint.stepNumber + 1 };
    }
    case "answer":
      if (checkpoint.status !== "stoppedByInteractiveTool" || open.length === 0) {
        throw new EngineInputError(`checkpoint ${checkpoint.id} is not waiting for an interactive answer (status ${checkpoint.status})`);
      }
      return {
        ...base,
        messages,
        inputMessages: [],
        stepNumber: checkpoint.stepNumber,
        pending: { results: checkpoint.partialToolResults ?? [], answer: start.answer },
      };
    case "resume": {
      if (checkpoint.status === "stoppedByInteractiveTool") {
        throw new EngineInputError(`checkpoint ${checkpoint.id} waits for an interactive answer; give it with -i`);
      }
      if (open.length > 0) {
        return { ...base, messages, inputMessages: [], stepNumber: checkpoint.stepNumber, pending: { results: checkpoint.partialToolResults ?? [] } };
      }
      const last = messages[messages.length - 1];
      if (last?.type === "expertMessage") {
        throw new EngineInputError(`checkpoint ${checkpoint.id} ends with the expert's answer; give a query to continue from it`);
      }
      // A "proceeding" checkpoint closes its step; any other stopped at the start of the step it names.
      const stepNumber = checkpoint.status === "proceeding" ? checkpoint.stepNumber + 1 : checkpoint.stepNumber;
      return { ...base, messages, inputMessages: [], stepNumber };
    }
  }
}

/**
 * Answering a job whose question came from a delegated run: the delegate calls that resume a waiting run, by tool
 * call id, from the checkpoints the host passed along.
 */
function resumableDelegates(input: EngineInput): Map<string, Checkpoint> {
  const out = new Map<string, Checkpoint>();
  if (input.start.kind !== "answer") return out;
  const byId = new Map((input.start.delegated ?? []).map((c) => [c.id, c]));
  for (const checkpoint of [input.start.checkpoint, ...byId.values()]) {
    for (const to of checkpoint.delegateTo ?? []) {
      const waiting = to.checkpointId ? byId.get(to.checkpointId) : undefined;
      if (waiting) out.set(to.toolCallId, waiting);
    }
  }
  return out;
}

/** A delegated run that stopped for an interactive answer, resumed: its open calls get the answer (or resume further). */
function resumedDelegate(input: EngineInput, checkpoint: Checkpoint): Omit<RunStart, "runId"> {
  const expert = expertOf(input, checkpoint.expert.key);
  const answer = input.start.kind === "answer" ? input.start.answer : "";
  return {
    expert,
    messages: checkpoint.messages.map((m) => (m.type === "instructionMessage" ? instructionMessage(expert) : m)),
    inputMessages: [],
    stepNumber: checkpoint.stepNumber,
    usage: checkpoint.usage,
    pending: { results: checkpoint.partialToolResults ?? [], answer },
  };
}

function lastCalls(messages: Message[]): ToolCallPart[] {
  const last = messages[messages.length - 1];
  if (last?.type !== "expertMessage") return [];
  return last.contents.filter((p): p is ToolCallPart => p.type === "toolCallPart");
}

function openCallIds(messages: Message[], partial: Array<{ id: string }>): string[] {
  const answered = new Set(partial.map((r) => r.id));
  return lastCalls(messages)
    .map((c) => c.toolCallId)
    .filter((id) => !answered.has(id));
}

function skillSpecs(expert: EngineExpert, input: EngineInput, deps: EngineDeps): SkillSpec[] {
  const passThrough: Record<string, string> = {};
  for (const name of PASS_THROUGH_ENV) {
    const value = deps.env[name];
    if (value !== undefined) passThrough[name] = value;
  }
  const filters = (s: { pick?: string[] | undefined; omit?: string[] | undefined }) => ({
    ...(s.pick ? { pick: s.pick } : {}),
    ...(s.omit ? { omit: s.omit } : {}),
  });
  const specs: SkillSpec[] = [];
  for (const skill of expert.skills) {
    switch (skill.type) {
      case "base": {
        // In this process: a second Node process for it cost about 0.1 s of every run's start. Its exec tool's
        // commands still get only what that process had: the variables the MCP SDK gives any stdio server, the
        // pass-through ones, and the workspace (and the image's compile cache, as agent-entrypoint.sh set it).
        const env: Record<string, string> = {
          ...inheritedEnv(deps.env),
          ...passThrough,
          PERSTACK_WORKSPACE: input.workspace,
          ...(deps.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: deps.env.NODE_COMPILE_CACHE } : {}),
        };
        specs.push({
          name: skill.name,
          transport: "inProcess",
          serve: async (transport) => {
            const { createBaseSkillServer } = await import("./base-skill/server.js");
            // Fail at start, not on the first tool call, when the workspace is missing.
            await realpath(input.workspace);
            await createBaseSkillServer({ root: input.workspace, env }).connect(transport);
          },
          ...filters(skill),
        });
        break;
      }
      case "mcpStdio": {
        const own: Record<string, string> = {};
        for (const name of skill.envNames) {
          const value = deps.env[name];
          if (value !== undefined) own[name] = value;
        }
        specs.push({ name: skill.name, transport: "stdio", command: skill.command, args: skill.args, env: { ...passThrough, ...own }, cwd: input.workspace, ...filters(skill) });
        break;
      }
      case "mcpSse":
        specs.push({ name: skill.name, transport: "sse", url: skill.url, ...filters(skill) });
        break;
      case "interactive":
        break;
    }
  }
  return specs;
}

/** What the MCP SDK's stdio transport copies from the parent into any stdio server: INHERITED_ENV_VARS, no shell functions. */
function inheritedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of INHERITED_ENV_VARS) {
    const value = env[name];
    if (value !== undefined && !value.startsWith("()")) out[name] = value;
  }
  return out;
}
