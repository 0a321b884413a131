// PURE: a comparison from the jobs' records (job-record.ts): each run's figures as `perstack log` counts them, the
// per-runtime spreads the table and the charts show, and the provenance. Running the runs and reading the records
// happen elsewhere, so `perstack compare --from` builds exactly what the comparison that ran them built.
import type { LoggedEvent } from "../history/logged-event.js";
import { errorOf, isRecord, toolCallsOf, toolResultsOf } from "../history/logged-event.js";
import {
  COMPARISON_VERSION,
  MAX_ANSWER_CHARS,
  MAX_ARGS_CHARS,
  MAX_TIMELINE_CALLS,
  type Comparison,
  type ComparisonRun,
  type ComparisonUsage,
  type CostSource,
  type EgressDecision,
  type Provenance,
  type RuntimeSummary,
  type SkippedRuntime,
  type Spread,
  type TimelineCall,
} from "./comparison.js";
import type { JobRecord } from "./job-record.js";

const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text);

function usageOf(value: unknown): ComparisonUsage {
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const u = isRecord(value) ? value : {};
  const inputTokens = num(u.inputTokens);
  const outputTokens = num(u.outputTokens);
  return {
    inputTokens,
    outputTokens,
    cachedInputTokens: num(u.cachedInputTokens),
    reasoningTokens: num(u.reasoningTokens),
    totalTokens: num(u.totalTokens) || inputTokens + outputTokens,
  };
}

/** The tool calls in order, by normalized name, with whether each one's result was an error. */
function timelineOf(events: readonly LoggedEvent[], startedAt: number): { calls: TimelineCall[]; truncated: number } {
  const calls: TimelineCall[] = [];
  let truncated = 0;
  // Results name their tool, not their call: the n-th result of a tool answers its n-th call.
  const pending = new Map<string, TimelineCall[]>();
  for (const event of events) {
    for (const call of toolCallsOf(event)) {
      if (calls.length >= MAX_TIMELINE_CALLS) {
        truncated += 1;
        continue;
      }
      let args: string;
      try {
        args = JSON.stringify(call.args ?? {}) ?? "{}";
      } catch {
        args = "(not serializable)";
      }
      const entry: TimelineCall = {
        atMs: Math.max(0, event.timestamp - startedAt),
        name: call.normalizedName,
        ...(call.normalizedName !== call.toolName ? { nativeName: call.toolName } : {}),
        ...(call.skillName ? { skillName: call.skillName } : {}),
        args: clip(args, MAX_ARGS_CHARS),
      };
      calls.push(entry);
      const queue = pending.get(call.toolName) ?? [];
      queue.push(entry);
      pending.set(call.toolName, queue);
    }
    for (const result of toolResultsOf(event)) {
      const entry = pending.get(result.toolName)?.shift();
      if (entry) entry.failed = result.isError;
    }
  }
  return { calls, truncated };
}

function egressOf(events: readonly LoggedEvent[]): EgressDecision[] {
  const byKey = new Map<string, EgressDecision>();
  for (const event of events) {
    if (event.type !== "proxyAccess") continue;
    const action = event.action === "blocked" ? "blocked" : event.action === "allowed" ? "allowed" : undefined;
    const domain = typeof event.domain === "string" ? event.domain : undefined;
    const port = typeof event.port === "number" ? event.port : 0;
    if (!action || !domain) continue;
    const key = `${action} ${domain} ${port}`;
    const known = byKey.get(key);
    if (known) known.count += 1;
    else byKey.set(key, { action, domain: clip(domain, 255), port, count: 1 });
  }
  return [...byKey.values()].sort((a, b) => (a.action === b.action ? b.count - a.count || a.domain.localeCompare(b.domain) : a.action === "blocked" ? -1 : 1));
}

/** The coordinator's final answer: the last completeRun of the job's own expert. */
function finalAnswerOf(events: readonly LoggedEvent[], expertKey: string): string | undefined {
  let answer: string | undefined;
  for (const event of events) {
    if (event.type === "completeRun" && typeof event.text === "string" && (event.expertKey === undefined || event.expertKey === expertKey)) answer = event.text;
  }
  return answer === undefined ? undefined : clip(answer, MAX_ANSWER_CHARS);
}

/** What a CLI said it cost (Claude Code's total_cost_usd, in the final checkpoint's metadata). */
function selfReportedCost(events: readonly LoggedEvent[]): number | undefined {
  let cost: number | undefined;
  for (const event of events) {
    if (event.type !== "completeRun" && event.type !== "stopRunByError" && event.type !== "stopRunByExceededMaxSteps") continue;
    const checkpoint = isRecord(event.checkpoint) ? event.checkpoint : undefined;
    const metadata = checkpoint && isRecord(checkpoint.metadata) ? checkpoint.metadata : undefined;
    if (typeof metadata?.totalCostUsd === "number" && Number.isFinite(metadata.totalCostUsd)) cost = (cost ?? 0) + metadata.totalCostUsd;
  }
  return cost;
}

function stopError(events: readonly LoggedEvent[]): string | undefined {
  for (let i = events.length - 1; i >= 0; i -= 1) {
    const event = events[i]!;
    if (event.type !== "stopRunByError") continue;
    const error = errorOf(event.error);
    if (error) return clip(`${error.name}: ${error.message}`.replace(/\s+/g, " "), 500);
  }
  return undefined;
}

/** One run of the comparison from its job's record. `runtime`/`repeat` come from compare's own record or the caller. */
export function comparisonRun(record: JobRecord, fallback: { runtime?: string; repeat: number }): ComparisonRun {
  const { log, setting, compare } = record;
  const { job, events, summary } = log;
  const metered = job.metered;
  const selfUsage = usageOf(job.usage);
  const selfCost = selfReportedCost(events);
  const meteredCost = metered?.costUsd ?? null;
  const costSource: CostSource = metered && meteredCost !== null ? "metered" : selfCost !== undefined ? "self-reported" : "none";
  const { calls, truncated } = timelineOf(events, job.startedAt);
  const toolCallCount = Object.values(summary.toolCalls).reduce((sum, n) => sum + n, 0);
  const answer = finalAnswerOf(events, job.coordinatorExpertKey);
  const error = job.status === "completed" ? undefined : stopError(events);
  return {
    runtime: compare?.runtime ?? setting?.runtime?.name ?? fallback.runtime ?? job.runtime,
    repeat: compare?.repeat ?? fallback.repeat,
    jobId: job.id,
    status: job.status,
    ...(error ? { error } : {}),
    model: setting?.model ?? "unknown",
    provider: setting?.provider ?? "unknown",
    wallTimeMs: job.finishedAt !== undefined ? Math.max(0, job.finishedAt - job.startedAt) : 0,
    steps: summary.steps,
    toolCalls: { ...summary.toolCalls },
    toolCallCount,
    ...(metered
      ? {
          metered: {
            requests: metered.requests,
            usage: { ...usageOf(metered.usage), cacheWriteTokens: typeof metered.usage.cacheWriteTokens === "number" ? metered.usage.cacheWriteTokens : 0 },
            costUsd: meteredCost,
          },
        }
      : {}),
    selfReported: { usage: selfUsage, ...(selfCost !== undefined ? { costUsd: selfCost } : {}) },
    costUsd: costSource === "metered" ? meteredCost : costSource === "self-reported" ? selfCost! : null,
    costSource,
    retries: summary.errors.retries,
    blockedEgress: summary.blockedEgress.count,
    egress: egressOf(events),
    timeline: calls,
    timelineTruncated: truncated,
    ...(answer !== undefined ? { finalAnswer: answer } : {}),
    ...(compare?.check ? { check: compare.check } : {}),
    ...(compare?.changes ? { changes: compare.changes } : {}),
    ...(compare?.workspaceDir ? { workspaceDir: compare.workspaceDir } : {}),
  };
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: 0, min: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** The tokens a run is compared by: the gateway's meter when it has one, else what the runtime reported. */
export function comparedUsage(run: ComparisonRun): ComparisonUsage {
  return run.metered ? run.metered.usage : run.selfReported.usage;
}

export function runtimeSummaries(runtimes: readonly string[], runs: readonly ComparisonRun[]): RuntimeSummary[] {
  return runtimes.flatMap((runtime) => {
    const own = runs.filter((run) => run.runtime === runtime);
    if (own.length === 0) return [];
    const of = (pick: (run: ComparisonRun) => number) => spread(own.map(pick));
    const costs = own.map((run) => run.costUsd).filter((cost): cost is number => cost !== null);
    const sources = new Set(own.map((run) => run.costSource).filter((s) => s !== "none"));
    const checked = own.filter((run) => run.check);
    return [
      {
        runtime,
        runs: own.length,
        completed: own.filter((run) => run.status === "completed").length,
        ...(checked.length > 0 ? { checksPassed: checked.filter((run) => run.check!.passed).length } : {}),
        wallTimeMs: of((run) => run.wallTimeMs),
        steps: of((run) => run.steps),
        toolCalls: of((run) => run.toolCallCount),
        inputTokens: of((run) => comparedUsage(run).inputTokens),
        outputTokens: of((run) => comparedUsage(run).outputTokens),
        cachedInputTokens: of((run) => comparedUsage(run).cachedInputTokens),
        // A cost only when every run has one: a median over some runs would compare unlike things.
        ...(costs.length === own.length ? { costUsd: spread(costs) } : {}),
        costSource: sources.size === 1 ? [...sources][0]! : sources.size === 0 ? "none" : "self-reported",
        retries: of((run) => run.retries),
        blockedEgress: of((run) => run.blockedEgress),
      },
    ];
  });
}

export function provenanceOf(records: readonly JobRecord[], perstackVersion: string, pricing?: Provenance["pricing"]): Provenance {
  const runtimes = new Map<string, Provenance["runtimes"][number]>();
  const models = new Set<string>();
  let priced = pricing;
  for (const { setting, log } of records) {
    const name = setting?.runtime?.name ?? log.job.runtime;
    if (!runtimes.has(name)) {
      const image = setting?.images.find((i) => i.role === "agent")?.ref;
      runtimes.set(name, {
        runtime: name,
        ...(setting?.runtime?.cliPackage ? { cliPackage: setting.runtime.cliPackage } : {}),
        ...(setting?.runtime?.cliVersion ? { cliVersion: setting.runtime.cliVersion } : {}),
        ...(image ? { image } : {}),
      });
    }
    if (setting?.model) models.add(setting.model);
    if (!priced && log.job.metered?.pricing) {
      const p = log.job.metered.pricing;
      priced = { source: p.source, ...(p.date ? { date: p.date } : {}), sha256: p.sha256 };
    }
  }
  return { perstackVersion, runtimes: [...runtimes.values()], models: [...models], ...(priced ? { pricing: priced } : {}) };
}

/** What a comparison says about itself, before its runs. */
export type ComparisonHeader = Pick<Comparison, "id" | "createdAt" | "expertKey" | "query" | "runtimes" | "repeat" | "concurrency" | "check" | "fromJobs">;

export function buildComparison(
  header: ComparisonHeader,
  records: ReadonlyArray<{ record: JobRecord; runtime?: string; repeat: number }>,
  skipped: SkippedRuntime[],
  perstackVersion: string,
  warnings: string[] = [],
): Comparison {
  const runs = records.map(({ record, runtime, repeat }) => comparisonRun(record, { ...(runtime ? { runtime } : {}), repeat }));
  // Runtimes in the order asked for; a --from comparison lists them in the order its jobs came.
  const runtimes = header.runtimes.length > 0 ? header.runtimes : [...new Set(runs.map((run) => run.runtime))];
  return {
    version: COMPARISON_VERSION,
    ...header,
    runtimes,
    runs,
    skipped,
    summary: runtimeSummaries(runtimes, runs),
    provenance: provenanceOf(records.map((r) => r.record), perstackVersion),
    warnings,
  };
}
