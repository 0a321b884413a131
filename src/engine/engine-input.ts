// The one file the host hands the engine (written as a HOME file, read by engine/main.ts): everything a job
// invocation needs that is not a secret. Secrets (provider keys, skills' requiredEnv values, provider header
// values) arrive as environment variables only; this file names them.
import { z } from "zod";
import { providerSchema } from "../config/schema.js";
import { checkpointSchema } from "../model/perstack-schema.js";

/** Where the host puts the input, relative to the agent's HOME. */
export const ENGINE_INPUT_HOME_PATH = ".perstack/engine-input.json";
/** Provider header values (JSON object), kept out of the input file because they may carry credentials. */
export const PROVIDER_HEADERS_ENV = "PERSTACK_PROVIDER_HEADERS";

const filters = {
  description: z.string().optional(),
  rule: z.string().optional(),
  pick: z.array(z.string()).optional(),
  omit: z.array(z.string()).optional(),
};

export const engineSkillSchema = z.discriminatedUnion("type", [
  /** An MCP server started as a process in the image (installed at build time). */
  z.strictObject({
    type: z.literal("mcpStdio"),
    name: z.string(),
    command: z.string(),
    args: z.array(z.string()),
    /** The variables (by name) this server gets from the engine's environment, besides the proxy ones. */
    envNames: z.array(z.string()),
    ...filters,
  }),
  /** An MCP server over SSE, reached through the proxy. */
  z.strictObject({ type: z.literal("mcpSse"), name: z.string(), url: z.string(), ...filters }),
  /** The built-in @perstack/base skill (src/engine/base-skill), run as an MCP stdio server. */
  z.strictObject({ type: z.literal("base"), name: z.string(), ...filters }),
  /** Tools answered by the user: calling one stops the run until `--continue-job … -i` gives the answer. */
  z.strictObject({
    type: z.literal("interactive"),
    name: z.string(),
    description: z.string().optional(),
    rule: z.string().optional(),
    tools: z.array(
      z.strictObject({
        name: z.string(),
        description: z.string().optional(),
        /** A JSON Schema object. */
        inputSchema: z.record(z.string(), z.unknown()),
      }),
    ),
  }),
]);
export type EngineSkill = z.infer<typeof engineSkillSchema>;

export const engineExpertSchema = z.strictObject({
  key: z.string(),
  name: z.string(),
  version: z.string(),
  description: z.string().optional(),
  instruction: z.string(),
  /** Keys of experts this one may delegate to; each is in EngineInput.experts. */
  delegates: z.array(z.string()),
  skills: z.array(engineSkillSchema),
});
export type EngineExpert = z.infer<typeof engineExpertSchema>;

/** How this invocation begins. */
export const engineStartSchema = z.discriminatedUnion("kind", [
  /** A new job: a fresh run of the coordinator on the query. */
  z.strictObject({ kind: z.literal("query"), query: z.string() }),
  /** --continue / --continue-job: the checkpoint's conversation plus a new user message. */
  z.strictObject({ kind: z.literal("continue"), checkpoint: checkpointSchema, query: z.string() }),
  /**
   * --continue-job … -i: the answer to the checkpoint's pending interactive tool call. When the question was asked
   * in a delegated run, the checkpoint is the coordinator's and `delegated` holds the checkpoints of the runs
   * below it that wait (named by its delegateTo[].checkpointId, and theirs); each resumes and gets the answer.
   */
  z.strictObject({
    kind: z.literal("answer"),
    checkpoint: checkpointSchema,
    answer: z.string(),
    delegated: z.array(checkpointSchema).optional(),
  }),
  /**
   * --resume-from without a query: carry on from the checkpoint as if the run had never stopped (run its pending
   * tool calls, else generate the next step).
   */
  z.strictObject({ kind: z.literal("resume"), checkpoint: checkpointSchema }),
]);
export type EngineStart = z.infer<typeof engineStartSchema>;

export const engineInputSchema = z.strictObject({
  version: z.literal(1),
  jobId: z.string(),
  /** The id of the run this invocation starts (the coordinator's, or the resumed run's replacement). */
  runId: z.string(),
  /** The expert this invocation runs first: the coordinator, or the expert of the checkpoint being continued. */
  expertKey: z.string(),
  /** Every expert reachable from expertKey through delegates, by key. */
  experts: z.record(z.string(), engineExpertSchema),
  /** Header values are not here: see PROVIDER_HEADERS_ENV. */
  provider: providerSchema,
  model: z.string(),
  reasoningBudget: z.union([z.string(), z.number()]).optional(),
  /** Steps allowed in the whole job, and the steps earlier invocations of the job already used. */
  maxSteps: z.number().int().positive(),
  stepsBefore: z.number().int().min(0),
  maxRetries: z.number().int().min(0),
  /** Milliseconds per generation. */
  timeout: z.number().int().positive(),
  /** The workspace the base skill is confined to. */
  workspace: z.string(),
  /** Shown in checkpoints' metadata. */
  runtime: z.string(),
  runtimeVersion: z.string(),
  start: engineStartSchema,
});
export type EngineInput = z.infer<typeof engineInputSchema>;
