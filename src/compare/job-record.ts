// Reads what a comparison needs of one recorded job: job.json and its events (as `perstack log` reads them), the
// root run's run-setting.json (model, provider, runtime, images), and the record compare wrote beside the job
// (the workspace changes and the check result). Everything here was written by the host, but from what a sandbox
// printed: it is read through the tolerant accessors of src/history and validated before use.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { readJobLog, type JobLog } from "../history/job-log.js";
import { isRecord } from "../history/logged-event.js";
import { jobsDir, listRunIds } from "../storage/job-reader.js";
import type { CheckResult, WorkspaceChanges } from "./comparison.js";

/** The file compare writes into a job's directory once the run is over: what --from needs that the job lacks. */
export const COMPARISON_RUN_FILE = "comparison-run.json";

const fileChange = z.object({
  path: z.string(),
  status: z.enum(["added", "modified", "deleted"]),
  kind: z.enum(["text", "binary", "too-large", "special"]),
  bytesBefore: z.number().optional(),
  bytesAfter: z.number().optional(),
  added: z.number().optional(),
  removed: z.number().optional(),
});

const comparisonRunRecord = z.object({
  comparisonId: z.string(),
  runtime: z.string(),
  repeat: z.number().int().min(0),
  changes: z.object({ files: z.array(fileChange), patch: z.string(), patchTruncated: z.boolean(), note: z.string().optional() }).optional(),
  check: z
    .object({
      command: z.string(),
      passed: z.boolean(),
      exitCode: z.number().nullable(),
      timedOut: z.boolean(),
      durationMs: z.number(),
      outputTail: z.string(),
    })
    .optional(),
  workspaceDir: z.string().optional(),
  /** The comparison's own settings, the same in each of its runs' records: what --from needs to rebuild it as it was. */
  comparison: z
    .object({
      createdAt: z.number(),
      expertKey: z.string(),
      query: z.string(),
      runtimes: z.array(z.string()),
      repeat: z.number().int().min(1),
      concurrency: z.number().int().min(0),
      check: z.string().optional(),
      skipped: z.array(z.object({ runtime: z.string(), reason: z.string() })),
      warnings: z.array(z.string()),
    })
    .optional(),
});

export type ComparisonRunRecord = z.infer<typeof comparisonRunRecord> & { changes?: WorkspaceChanges; check?: CheckResult };

/** What the root run's run-setting.json says (see run-job.ts). */
export interface RootRunSetting {
  runId: string;
  model?: string;
  provider?: string;
  runtime?: { name?: string; cliPackage?: string; cliVersion?: string };
  images: Array<{ role: string; ref: string }>;
  query?: string;
  expertKey?: string;
}

export interface JobRecord {
  log: JobLog;
  setting?: RootRunSetting;
  compare?: ComparisonRunRecord;
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** The run-setting.json of the job's root run: the one the host wrote with the plan's images. */
function rootRunSetting(perstackDir: string, jobId: string): RootRunSetting | undefined {
  for (const runId of listRunIds(perstackDir, jobId)) {
    const path = join(jobsDir(perstackDir), jobId, "runs", runId, "run-setting.json");
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, "utf8"));
    } catch {
      continue;
    }
    if (!isRecord(value) || !Array.isArray(value.images)) continue;
    const runtime = isRecord(value.runtime) ? value.runtime : {};
    return {
      runId,
      ...(str(value.model) ? { model: str(value.model)! } : {}),
      ...(str(value.provider) ? { provider: str(value.provider)! } : {}),
      runtime: {
        ...(str(runtime.name) ? { name: str(runtime.name)! } : {}),
        ...(str(runtime.cliPackage) ? { cliPackage: str(runtime.cliPackage)! } : {}),
        ...(str(runtime.cliVersion) ? { cliVersion: str(runtime.cliVersion)! } : {}),
      },
      images: value.images.flatMap((image) => (isRecord(image) && str(image.role) && str(image.ref) ? [{ role: str(image.role)!, ref: str(image.ref)! }] : [])),
      ...(str(value.query) !== undefined ? { query: str(value.query)! } : {}),
      ...(str(value.expertKey) ? { expertKey: str(value.expertKey)! } : {}),
    };
  }
  return undefined;
}

function comparisonRecord(perstackDir: string, jobId: string): ComparisonRunRecord | undefined {
  const path = join(jobsDir(perstackDir), jobId, COMPARISON_RUN_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const parsed = comparisonRunRecord.safeParse(JSON.parse(readFileSync(path, "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The job's whole record; JobNotFoundError (bad input) for an id that names no job. */
export async function readJobRecord(perstackDir: string, jobId: string): Promise<JobRecord> {
  // Every event of every run (take 0: no paging).
  const log = await readJobLog(perstackDir, { jobId, selector: {}, paging: { take: 0, offset: 0, context: 0 } });
  // readJobLog answers undefined only when no job is named and none exists.
  if (!log) throw new Error(`job ${jobId} could not be read`);
  const setting = rootRunSetting(perstackDir, jobId);
  const compare = comparisonRecord(perstackDir, jobId);
  return { log, ...(setting ? { setting } : {}), ...(compare ? { compare } : {}) };
}
