// `perstack log --summary`: what a job (or one run) amounted to, counted as its events stream past, so the summary
// costs no second pass and holds no events.
import { PRESET_TYPES } from "./event-selection.js";
import { checkpointHeader, errorOf, isRecord, savedCheckpointOf, toolCallsOf, toolResultsOf, usageOf, type CheckpointHeader, type LoggedEvent, type LoggedUsage } from "./logged-event.js";

/** Errors kept with their message; beyond this they are only counted (a job can retry thousands of times). */
const MAX_ERROR_DETAILS = 20;
/** Distinct blocked domains named; beyond this they are only counted. */
const MAX_BLOCKED_DOMAINS = 50;

export interface ErrorDetail {
  type: string;
  runId: string;
  expertKey?: string;
  stepNumber?: number;
  timestamp: number;
  message: string;
}

/** What the events of a scope (a job, or one run) say, before any filter or paging. */
export interface EventTotals {
  events: number;
  runs: number;
  /** The run's own outcome, from its last stopping event (for a run's summary; a job's comes from job.json). */
  lastStop?: string;
  /** Distinct (run, step) pairs that started a generation. */
  steps: number;
  /** Tokens per the runs' checkpoints: each run's latest minus what it started from. */
  usage: LoggedUsage;
  firstTimestamp?: number;
  lastTimestamp?: number;
  /** Calls by tool name, a runtime's built-in tools under their base-skill names (exec, writeTextFile, ...). */
  toolCalls: Record<string, number>;
  errors: {
    stoppedByError: number;
    retries: number;
    failedToolResults: number;
    sandboxWarnings: number;
    /** The first few, with what they said. */
    details: ErrorDetail[];
  };
  blockedEgress: { count: number; domains: string[] };
  checkpoints: number;
  latestCheckpoint?: CheckpointHeader;
}

const STOP_STATUS: Record<string, string> = {
  completeRun: "completed",
  stopRunByError: "stoppedByError",
  stopRunByExceededMaxSteps: "stoppedByMaxSteps",
  stopRunByInteractiveTool: "stoppedByInteractiveTool",
  stopRunByDelegate: "stoppedByDelegate",
};

const zeroUsage = (): LoggedUsage => ({ inputTokens: 0, outputTokens: 0, reasoningTokens: 0, cachedInputTokens: 0, totalTokens: 0 });

function addUsage(into: LoggedUsage, add: LoggedUsage, sign = 1): void {
  into.inputTokens += sign * add.inputTokens;
  into.outputTokens += sign * add.outputTokens;
  into.reasoningTokens += sign * add.reasoningTokens;
  into.cachedInputTokens += sign * add.cachedInputTokens;
  into.totalTokens += sign * add.totalTokens;
}

export class EventTotalsCounter {
  private readonly totals: EventTotals = {
    events: 0,
    runs: 0,
    steps: 0,
    usage: zeroUsage(),
    toolCalls: {},
    errors: { stoppedByError: 0, retries: 0, failedToolResults: 0, sandboxWarnings: 0, details: [] },
    blockedEgress: { count: 0, domains: [] },
    checkpoints: 0,
  };
  private readonly runs = new Set<string>();
  private readonly steps = new Set<string>();
  private readonly runUsage = new Map<string, { start: LoggedUsage; latest: LoggedUsage }>();
  private readonly blockedDomains = new Set<string>();

  add(event: LoggedEvent): void {
    const t = this.totals;
    t.events += 1;
    this.runs.add(event.runId);
    t.firstTimestamp = Math.min(t.firstTimestamp ?? event.timestamp, event.timestamp);
    t.lastTimestamp = Math.max(t.lastTimestamp ?? event.timestamp, event.timestamp);
    if (event.type === "startGeneration" && event.stepNumber !== undefined) this.steps.add(`${event.runId}\0${event.stepNumber}`);
    if (event.type in STOP_STATUS) t.lastStop = STOP_STATUS[event.type];
    for (const call of toolCallsOf(event)) t.toolCalls[call.normalizedName] = (t.toolCalls[call.normalizedName] ?? 0) + 1;
    this.countErrors(event);
    if (event.type === "proxyAccess" && event.action === "blocked") {
      t.blockedEgress.count += 1;
      const domain = typeof event.domain === "string" ? event.domain : "?";
      if (!this.blockedDomains.has(domain) && this.blockedDomains.size < MAX_BLOCKED_DOMAINS) this.blockedDomains.add(domain);
    }
    if (event.type === "startRun" && isRecord(event.initialCheckpoint)) {
      const start = usageOf(event.initialCheckpoint.usage) ?? zeroUsage();
      this.runUsage.set(event.runId, { start, latest: this.runUsage.get(event.runId)?.latest ?? start });
    }
    const checkpoint = checkpointHeader(savedCheckpointOf(event));
    if (checkpoint) {
      t.checkpoints += 1;
      t.latestCheckpoint = checkpoint;
      if (checkpoint.usage) {
        const run = this.runUsage.get(event.runId);
        if (run) run.latest = checkpoint.usage;
        else this.runUsage.set(event.runId, { start: zeroUsage(), latest: checkpoint.usage });
      }
    }
  }

  private countErrors(event: LoggedEvent): void {
    const errors = this.totals.errors;
    let message: string | undefined;
    if (event.type === "stopRunByError") {
      errors.stoppedByError += 1;
      const error = errorOf(event.error);
      message = error ? `${error.name}: ${error.message}` : "stopped by an error";
    } else if (event.type === "retry") {
      errors.retries += 1;
      message = typeof event.reason === "string" ? event.reason : "retry";
    } else if (event.type === "sandboxWarning") {
      errors.sandboxWarnings += 1;
      message = `${typeof event.code === "string" ? `${event.code}: ` : ""}${typeof event.message === "string" ? event.message : ""}`;
    } else if (event.type === "resolveToolResults") {
      errors.failedToolResults += toolResultsOf(event).filter((result) => result.isError).length;
    }
    if (message !== undefined && errors.details.length < MAX_ERROR_DETAILS) {
      errors.details.push({
        type: event.type,
        runId: event.runId,
        ...(event.expertKey !== undefined ? { expertKey: event.expertKey } : {}),
        ...(event.stepNumber !== undefined ? { stepNumber: event.stepNumber } : {}),
        timestamp: event.timestamp,
        message,
      });
    }
  }

  result(): EventTotals {
    const usage = zeroUsage();
    for (const run of this.runUsage.values()) {
      addUsage(usage, run.latest);
      addUsage(usage, run.start, -1);
    }
    return {
      ...this.totals,
      runs: this.runs.size,
      steps: this.steps.size,
      usage,
      toolCalls: { ...this.totals.toolCalls },
      errors: { ...this.totals.errors, details: [...this.totals.errors.details] },
      blockedEgress: { count: this.totals.blockedEgress.count, domains: [...this.blockedDomains] },
    };
  }
}

/** Perstack's summary fields, over the events shown. */
export interface ShownCounts {
  totalEvents: number;
  errorCount: number;
  toolCallCount: number;
  delegationCount: number;
  stepRange?: { min: number; max: number };
}

export function shownCounts(events: readonly LoggedEvent[]): ShownCounts {
  const errors = new Set<string>(PRESET_TYPES.errors);
  const tools = new Set<string>(PRESET_TYPES.tools);
  const delegations = new Set<string>(PRESET_TYPES.delegations);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  const counts: ShownCounts = { totalEvents: events.length, errorCount: 0, toolCallCount: 0, delegationCount: 0 };
  for (const event of events) {
    if (errors.has(event.type)) counts.errorCount += 1;
    if (tools.has(event.type)) counts.toolCallCount += 1;
    if (delegations.has(event.type)) counts.delegationCount += 1;
    if (event.stepNumber !== undefined) {
      min = Math.min(min, event.stepNumber);
      max = Math.max(max, event.stepNumber);
    }
  }
  return min <= max ? { ...counts, stepRange: { min, max } } : counts;
}
