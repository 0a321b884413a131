// The provider gateway's stdout: one JSON line per model call it metered or refused, and its notices
// (src/gateway/types.ts GatewayRecord). The gateway is this project's own program, but it relays what the
// agent asked for and what the upstream answered, so every line is checked before it becomes an event.
import { z } from "zod";

const count = z.number().int().nonnegative().finite();
const usageSchema = z.object({
  inputTokens: count,
  outputTokens: count,
  reasoningTokens: count,
  cachedInputTokens: count,
  cacheWriteTokens: count,
  totalTokens: count,
});
const text = (max: number) => z.string().max(max);

const recordSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("gatewayReady"), port: z.number() }),
  z.object({
    type: z.literal("providerUsage"),
    requestId: text(64),
    method: text(16),
    path: text(2048),
    status: z.number().int(),
    model: text(256).optional(),
    usage: usageSchema.optional(),
    latencyMs: z.number().nonnegative().finite(),
  }),
  z.object({ type: z.literal("budgetExceeded"), budget: z.enum(["maxCostUsd", "maxTokens"]), limit: z.number(), spent: z.number() }),
  z.object({ type: z.literal("gatewayRefused"), requestId: text(64), method: text(16), status: z.number().int(), reason: text(64) }),
  z.object({ type: z.literal("gatewayWarning"), message: text(2048) }),
]);

export type GatewayLogRecord = z.infer<typeof recordSchema>;

/** The record a line holds, or undefined for anything else (Node's own warnings, a partial line). */
export function parseGatewayLine(line: string): GatewayLogRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = recordSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** The gateway's own signals to the process that started it (ready, end-of-log mark): not records of the run. */
export function isGatewayControlLine(line: string): boolean {
  return line.includes('"gatewayReady"') || line.includes('"gatewayMark"');
}
