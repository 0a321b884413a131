// runs/<runId>/collector.json: what a collector needs to read a run's output, written before the agent starts. If the
// perstack process that runs it dies, another one (recover-run.ts) reads the agent's output again from the container's
// log with a parser made the same way, whose ids come out the same (idSequence): what was recorded is recognised.
// Written by this program under perstack/, which the agent cannot reach; still validated, as any file read back.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { reachableExperts } from "../config/resolve.js";
import { RUNTIME_NAMES } from "../config/schema.js";
import { idSequence } from "../model/ids.js";
import { runtimeAdapter } from "../runtimes/registry.js";
import type { StreamParser } from "../runtimes/types.js";
import type { PreparedRun } from "./prepare-run.js";

export const COLLECTOR_FILE = "collector.json";

const recordSchema = z.object({
  runtime: z.enum(RUNTIME_NAMES),
  expert: z.object({ key: z.string(), name: z.string(), version: z.string() }),
  instruction: z.string(),
  query: z.string(),
  metadata: z.record(z.string(), z.unknown()),
  experts: z.array(z.string()),
  model: z.string(),
  /** The provider gateway meters the run's calls (job.json's `metered`), priced with this table. */
  gateway: z.boolean(),
  pricingPath: z.string().optional(),
  maxOutputBytes: z.number(),
  maxDurationMs: z.number(),
  workspaceMode: z.enum(["bind", "copy"]),
  startedAt: z.number(),
});

export type CollectorRecord = z.infer<typeof recordSchema>;

export function collectorRecordOf(prepared: PreparedRun, startedAt: number): CollectorRecord {
  const { plan } = prepared;
  return {
    runtime: plan.runtime.name as CollectorRecord["runtime"],
    expert: plan.expert,
    instruction: prepared.loaded.file.experts?.[plan.expert.key]?.instruction ?? "",
    query: plan.query,
    metadata: { runtimeVersion: plan.runtime.cliVersion, cliPackage: plan.runtime.cliPackage, model: plan.model },
    experts: reachableExperts(prepared.loaded, plan.expert.key).map((e) => e.key),
    model: plan.model,
    gateway: plan.gateway !== undefined,
    ...(prepared.pricingPath !== undefined ? { pricingPath: prepared.pricingPath } : {}),
    maxOutputBytes: plan.agent.limits.maxOutputBytes,
    maxDurationMs: plan.agent.limits.maxDurationMs,
    workspaceMode: plan.agent.workspace.mode,
    startedAt,
  };
}

/** The run's record, or why it cannot be read. */
export function readCollectorRecord(runDir: string): CollectorRecord | string {
  const path = join(runDir, COLLECTOR_FILE);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? `${path} is missing` : `${path} is not JSON`;
  }
  const parsed = recordSchema.safeParse(value);
  return parsed.success ? parsed.data : `${path} is not a collector record`;
}

/** The run's parser. Its ids depend only on the run's id and the output it reads, never on the clock or chance. */
export function parserFor(record: CollectorRecord, jobId: string, runId: string): StreamParser {
  return runtimeAdapter(record.runtime).createParser({
    jobId,
    runId,
    expert: record.expert,
    instruction: record.instruction,
    query: record.query,
    runtime: record.runtime,
    metadata: record.metadata,
    newId: idSequence(runId),
    now: Date.now,
  });
}
