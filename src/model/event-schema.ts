// zod schemas for Perstack events as this project records them (see perstack.ts: checkpoints by reference): the
// built-in engine's stdout lines are checked with them before the collector records anything. Objects are loose,
// like the other model schemas: a field a newer engine adds is kept, not rejected; but an event that carries its
// messages both inline and by reference is refused.
import { z } from "zod";
import { safeIdSchema } from "./id-schema.js";
import type { PerstackEvent } from "./perstack.js";
import {
  checkpointErrorSchema,
  checkpointRefSchema,
  messageSchema,
  messagesRefSchema,
  toolCallSchema,
  toolResultSchema,
  usageSchema,
} from "./perstack-schema.js";

const runtimeBase = {
  id: safeIdSchema,
  timestamp: z.number(),
  jobId: safeIdSchema,
  runId: safeIdSchema,
};
const runBase = { ...runtimeBase, expertKey: z.string().min(1), stepNumber: z.number().int().min(0) };

const runEvent = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.looseObject({ ...runBase, type: z.literal(type), ...shape });
const runtimeEvent = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.looseObject({ ...runtimeBase, type: z.literal(type), ...shape });

const generated = { newMessage: messageSchema, toolCalls: z.array(toolCallSchema), usage: usageSchema };

const eventSchemas = [
  runEvent("startRun", { initialCheckpoint: checkpointRefSchema, inputMessages: z.array(messageSchema) }),
  runEvent("startGeneration", {
    messagesRef: messagesRefSchema,
    messagesAfterRef: z.array(messageSchema).optional(),
    messages: z.undefined({ error: "startGeneration names its messages by messagesRef" }).optional(),
  }),
  runEvent("retry", { reason: z.string() }),
  runEvent("callTools", generated),
  runEvent("callDelegate", generated),
  runEvent("callInteractiveTool", { newMessage: messageSchema, toolCall: toolCallSchema, usage: usageSchema }),
  runEvent("attemptCompletion", { toolResult: toolResultSchema }),
  runEvent("finishToolCall", { newMessages: z.array(messageSchema) }),
  runEvent("resolveToolResults", { toolResults: z.array(toolResultSchema) }),
  runEvent("finishAllToolCalls", { newMessages: z.array(messageSchema) }),
  runEvent("continueToNextStep", { checkpoint: checkpointRefSchema, nextCheckpoint: checkpointRefSchema }),
  runEvent("completeRun", { checkpoint: checkpointRefSchema, text: z.string(), usage: usageSchema }),
  runEvent("stopRunByError", { checkpoint: checkpointRefSchema, error: checkpointErrorSchema }),
  runEvent("stopRunByExceededMaxSteps", { checkpoint: checkpointRefSchema }),
  runEvent("stopRunByDelegate", { checkpoint: checkpointRefSchema }),
  runEvent("stopRunByInteractiveTool", { checkpoint: checkpointRefSchema }),
  runEvent("startStreamingReasoning", {}),
  runEvent("streamReasoning", { delta: z.string() }),
  runEvent("completeStreamingReasoning", { text: z.string() }),
  runEvent("startStreamingRunResult", {}),
  runEvent("streamRunResult", { delta: z.string() }),
  runEvent("completeStreamingRunResult", { text: z.string() }),
  runtimeEvent("initializeRuntime", {
    runtime: z.string(),
    runtimeVersion: z.string().optional(),
    model: z.string().optional(),
    sessionId: z.string().optional(),
  }),
  runtimeEvent("skillStarting", { skillName: z.string() }),
  runtimeEvent("skillConnected", { skillName: z.string() }),
  runtimeEvent("skillStderr", { skillName: z.string(), message: z.string() }),
  runtimeEvent("skillDisconnected", { skillName: z.string() }),
  runtimeEvent("dockerBuildProgress", {
    stage: z.string(),
    service: z.string(),
    message: z.string(),
    progress: z.number().optional(),
  }),
  runtimeEvent("dockerContainerStatus", { status: z.string(), service: z.string() }),
  runtimeEvent("proxyAccess", {
    action: z.enum(["allowed", "blocked"]),
    domain: z.string(),
    port: z.number(),
    reason: z.string().optional(),
  }),
  runtimeEvent("providerUsage", {
    requestId: z.string(),
    method: z.string(),
    path: z.string().optional(),
    status: z.number(),
    model: z.string().optional(),
    usage: z
      .object({
        inputTokens: z.number(),
        outputTokens: z.number(),
        reasoningTokens: z.number(),
        totalTokens: z.number(),
        cachedInputTokens: z.number(),
        cacheWriteTokens: z.number(),
      })
      .optional(),
    latencyMs: z.number().optional(),
    refused: z.string().optional(),
  }),
  runtimeEvent("sandboxWarning", {
    code: z.enum(["invalid-output", "forged-event", "output-limit", "policy-change-rejected", "workspace-change-rejected", "workspace-conflict", "workspace-skipped", "gateway-warning", "run-taken-over"]),
    message: z.string(),
    path: z.string().optional(),
  }),
] as const;

/** Every Perstack event type, each checked against its own shape. */
export const perstackEventSchema = z.discriminatedUnion("type", eventSchemas) as unknown as z.ZodType<PerstackEvent>;

/** The event types the schema knows, for messages naming an unknown one. */
export const PERSTACK_EVENT_TYPES: readonly string[] = eventSchemas.map((schema) => schema.shape.type.value);

type Missing = Exclude<PerstackEvent["type"], (typeof eventSchemas)[number]["shape"]["type"]["value"]>;
/** Compile-time check: an event type added to perstack.ts without a schema fails the build here. */
export const EVERY_EVENT_TYPE_HAS_A_SCHEMA: [Missing] extends [never] ? true : Missing = true;
