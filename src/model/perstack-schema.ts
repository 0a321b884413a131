// zod schemas for the Perstack data model (see perstack.ts). Data that crosses a trust boundary is checked with
// them: checkpoints read back from perstack/jobs, the engine's input file, and the engine's output lines. Objects
// are loose: a field a newer writer adds is kept, not rejected.
import { z } from "zod";
import { safeIdSchema } from "./id-schema.js";
import type { Checkpoint, CheckpointRef, Message, MessagesRef, ToolCall, ToolResult, Usage } from "./perstack.js";

export const usageSchema = z.looseObject({
  inputTokens: z.number(),
  outputTokens: z.number(),
  reasoningTokens: z.number(),
  totalTokens: z.number(),
  cachedInputTokens: z.number(),
}) satisfies z.ZodType<Usage>;

const textPart = z.looseObject({ type: z.literal("textPart"), text: z.string() });
const thinkingPart = z.looseObject({ type: z.literal("thinkingPart"), thinking: z.string(), signature: z.string().optional() });
const toolCallPart = z.looseObject({
  type: z.literal("toolCallPart"),
  toolCallId: z.string(),
  toolName: z.string(),
  args: z.unknown(),
});
const inlinePart = (type: "imageInlinePart" | "fileInlinePart") =>
  z.looseObject({ type: z.literal(type), encodedData: z.string(), mimeType: z.string() });
const toolResultContent = z.discriminatedUnion("type", [textPart, inlinePart("imageInlinePart"), inlinePart("fileInlinePart")]);
const toolResultPart = z.looseObject({
  type: z.literal("toolResultPart"),
  toolCallId: z.string(),
  toolName: z.string(),
  contents: z.array(toolResultContent),
  isError: z.boolean().optional(),
});

export const messageSchema = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("instructionMessage"), id: z.string(), contents: z.array(textPart) }),
  z.looseObject({ type: z.literal("userMessage"), id: z.string(), contents: z.array(textPart) }),
  z.looseObject({
    type: z.literal("expertMessage"),
    id: z.string(),
    contents: z.array(z.discriminatedUnion("type", [textPart, thinkingPart, toolCallPart])),
  }),
  z.looseObject({ type: z.literal("toolMessage"), id: z.string(), contents: z.array(toolResultPart) }),
]) as unknown as z.ZodType<Message>;

export const expertRefSchema = z.looseObject({ key: z.string(), name: z.string(), version: z.string() });

export const toolCallSchema = z.looseObject({
  id: z.string(),
  skillName: z.string(),
  toolName: z.string(),
  args: z.unknown(),
}) as unknown as z.ZodType<ToolCall>;

export const toolResultSchema = z.looseObject({
  id: z.string(),
  skillName: z.string(),
  toolName: z.string(),
  result: z.array(toolResultContent),
  isError: z.boolean().optional(),
}) as unknown as z.ZodType<ToolResult>;

export const checkpointErrorSchema = z.looseObject({
  name: z.string(),
  message: z.string(),
  statusCode: z.number().optional(),
  isRetryable: z.boolean(),
});

/** Everything of a checkpoint but its messages. */
const checkpointHeader = {
  // Ids name files under perstack/jobs (checkpoints/<id>.json, runs/<runId>/) and are read back to continue a job.
  id: safeIdSchema,
  jobId: safeIdSchema,
  runId: safeIdSchema,
  status: z.enum([
    "init",
    "proceeding",
    "completed",
    "stoppedByInteractiveTool",
    "stoppedByDelegate",
    "stoppedByExceededMaxSteps",
    "stoppedByError",
  ]),
  stepNumber: z.number().int().min(0),
  expert: expertRefSchema,
  usage: usageSchema,
  metadata: z.record(z.string(), z.unknown()).optional(),
  error: checkpointErrorSchema.optional(),
  delegateTo: z
    .array(
      z.looseObject({
        expert: expertRefSchema,
        toolCallId: z.string(),
        toolName: z.string(),
        runId: safeIdSchema,
        query: z.string(),
        checkpointId: safeIdSchema.optional(),
      }),
    )
    .optional(),
  delegatedBy: z
    .looseObject({
      expert: expertRefSchema,
      toolCallId: z.string(),
      toolName: z.string(),
      checkpointId: safeIdSchema,
      runId: safeIdSchema,
    })
    .optional(),
  pendingToolCalls: z.array(toolCallSchema).optional(),
  partialToolResults: z.array(toolResultSchema).optional(),
};

export const checkpointSchema = z.looseObject({ ...checkpointHeader, messages: z.array(messageSchema) }) as unknown as z.ZodType<Checkpoint>;

/** A MessagesRef: the checkpoint id names a file, so it must be a safe id. */
export const messagesRefSchema = z.strictObject({
  checkpointId: safeIdSchema,
  count: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
}) satisfies z.ZodType<MessagesRef>;

/**
 * A checkpoint by reference (CheckpointRef). A `messages` array next to the reference would make the event say
 * two things about one conversation: refused, so a reference is never ambiguous.
 */
export const checkpointRefSchema = z.looseObject({
  ...checkpointHeader,
  messagesRef: messagesRefSchema,
  messages: z.undefined({ error: "a checkpoint by reference (messagesRef) carries no messages" }).optional(),
  appendMessages: z.array(messageSchema).optional(),
}) as unknown as z.ZodType<CheckpointRef>;
