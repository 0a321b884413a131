// One job: its record (GET /v1/runs/{jobId}, refreshed while it runs), its events as they happen (SSE), and tabs for
// the timeline, the workspace diff and the checkpoints. A continuation (an answer, or a new query from a checkpoint)
// runs under the same job id: the view streams again from the last event it has, so nothing shows twice.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, ApiError } from "../api.js";
import { isActive, type RunRecord, type Session } from "../api-types.js";
import { toolCallOf, usageOf, type TokenUsage, type ToolCallView } from "../event-fields.js";
import { followRunEvents, type FollowState } from "../events.js";
import { formatCount, formatDuration, formatTime, formatUsd, plural, runDuration } from "../format.js";
import { usePolling } from "../polling.js";
import { href } from "../route.js";
import { Timeline } from "../timeline.js";
import { CheckpointsView } from "./checkpoints-view.js";
import { ErrorBanner, Loading, messageOf, StatusBadge } from "./common.js";
import { DiffView } from "./diff-view.js";
import { InteractiveAnswer } from "./interactive-answer.js";
import { TimelineView } from "./timeline-view.js";

type Tab = "timeline" | "diff" | "checkpoints";

/** Events after which the run's record (status, steps, usage) has likely changed. */
const RECORD_CHANGES = new Set(["startRun", "continueToNextStep", "completeRun", "stopRunByError", "stopRunByExceededMaxSteps", "stopRunByInteractiveTool", "stopRunByDelegate"]);

export function RunView({ jobId, session }: { jobId: string; session: Session }) {
  const [run, setRun] = useState<RunRecord>();
  const [loadError, setLoadError] = useState<string>();
  // No such run (or another tenant's): asking again every few seconds would not change that.
  const [missing, setMissing] = useState(false);
  const [actionError, setActionError] = useState<string>();
  const [tab, setTab] = useState<Tab>("timeline");
  const [follow, setFollow] = useState<FollowState>({ phase: "connecting" });
  // Bumped to stream again (after a continuation) from the last event received.
  const [generation, setGeneration] = useState(0);
  const [, setVersion] = useState(0);
  const timeline = useMemo(() => new Timeline(), []);
  const cursor = useRef<string | undefined>(undefined);
  const frame = useRef<number | undefined>(undefined);

  const refresh = async (signal?: AbortSignal) => {
    try {
      const record = await api.run(jobId);
      if (signal?.aborted) return;
      setRun(record);
      setLoadError(undefined);
      // Continued from elsewhere (the CLI, another tab) after this view's stream ended: follow the new invocation.
      if (isActive(record.status) && (follow.phase === "ended" || follow.phase === "failed")) setGeneration((n) => n + 1);
    } catch (caught) {
      if (signal?.aborted) return;
      setLoadError(messageOf(caught));
      if (caught instanceof ApiError && caught.status === 404) setMissing(true);
    }
  };

  useEffect(() => {
    const controller = new AbortController();
    // A run that starts or stops changes its record: fetch it now rather than at the next poll (once for a burst).
    let pending: ReturnType<typeof setTimeout> | undefined;
    const refreshSoon = () => {
      pending ??= setTimeout(() => {
        pending = undefined;
        void refresh();
      }, 250);
    };
    // Many events can arrive at once (a run's history on open): draw at most once a frame.
    const redraw = () => {
      frame.current ??= requestAnimationFrame(() => {
        frame.current = undefined;
        setVersion((n) => n + 1);
      });
    };
    void followRunEvents(
      jobId,
      {
        onEvent: (event) => {
          timeline.add(event);
          redraw();
          if (typeof event.type === "string" && RECORD_CHANGES.has(event.type)) refreshSoon();
        },
        onCursor: (id) => {
          cursor.current = id;
        },
        onState: (state) => {
          setFollow(state);
          if (state.phase === "ended") void refresh();
        },
      },
      { ...(cursor.current !== undefined ? { after: cursor.current } : {}), signal: controller.signal },
    );
    return () => {
      controller.abort();
      clearTimeout(pending);
      if (frame.current !== undefined) cancelAnimationFrame(frame.current);
      frame.current = undefined;
    };
  }, [jobId, generation]);

  const active = run === undefined || isActive(run.status);
  usePolling(refresh, missing ? null : active ? 2000 : 10_000, [jobId, active, missing]);

  const continued = () => {
    setTab("timeline");
    setRun((current) => (current ? { ...current, status: "queued" } : current));
    setGeneration((n) => n + 1);
    void refresh();
  };

  if (!run) return loadError ? <ErrorBanner message={loadError} /> : <Loading what={`run ${jobId}`} />;

  const cancel = async () => {
    try {
      await api.cancel(jobId);
      setActionError(undefined);
      await refresh();
    } catch (caught) {
      setActionError(messageOf(caught));
    }
  };

  return (
    <section class="run">
      <p class="crumbs">
        <a href={href({ name: "runs" })}>Runs</a> / <span class="mono">{jobId}</span>
      </p>
      <div class="section-head">
        <h1>
          {run.expert ?? "Run"} <StatusBadge status={run.status} testId="run-status" />
        </h1>
        {!session.readOnly && isActive(run.status) && (
          <button type="button" class="button danger" data-testid="cancel-run" onClick={() => void cancel()}>
            Cancel
          </button>
        )}
      </div>
      <ErrorBanner message={actionError} onDismiss={() => setActionError(undefined)} />
      <ErrorBanner message={loadError} />
      <RunSummary run={run} timeline={timeline} />
      {run.reason && <p class="banner banner-info">{run.reason}</p>}
      {run.status === "stoppedByInteractiveTool" && <PendingQuestion run={run} timeline={timeline} follow={follow} readOnly={session.readOnly} onAnswered={continued} />}
      {timeline.finalAnswer !== undefined && (
        <section class="card answer">
          <h2>Answer</h2>
          <pre class="text" data-testid="final-answer">
            {timeline.finalAnswer}
          </pre>
        </section>
      )}
      <div class="tabs" role="tablist">
        <TabButton tab="timeline" current={tab} onSelect={setTab} label={`Timeline${timeline.events > 0 ? ` (${timeline.events})` : ""}`} />
        <TabButton tab="diff" current={tab} onSelect={setTab} label="Diff" />
        <TabButton tab="checkpoints" current={tab} onSelect={setTab} label="Checkpoints" />
      </div>
      <div class="tab-panel" role="tabpanel">
        {tab === "timeline" && <TimelineView items={timeline.items} follow={follow} />}
        {tab === "diff" && <DiffView run={run} session={session} />}
        {tab === "checkpoints" && <CheckpointsView run={run} session={session} onContinued={continued} />}
      </div>
    </section>
  );
}

function TabButton({ tab, current, onSelect, label }: { tab: Tab; current: Tab; onSelect: (tab: Tab) => void; label: string }) {
  return (
    <button type="button" role="tab" aria-selected={tab === current} class={`tab${tab === current ? " active" : ""}`} data-testid={`tab-${tab}`} onClick={() => onSelect(tab)}>
      {label}
    </button>
  );
}

/** The larger of two counts of the same tokens: the record lags while a run goes, the events stop at what was read. */
function larger(recorded: TokenUsage | undefined, streamed: TokenUsage): TokenUsage {
  if (!recorded) return streamed;
  return recorded.inputTokens + recorded.outputTokens >= streamed.inputTokens + streamed.outputTokens ? recorded : streamed;
}

function RunSummary({ run, timeline }: { run: RunRecord; timeline: Timeline }) {
  const tokens = larger(usageOf(run.usage), timeline.usage());
  const metered = larger(usageOf(run.metered?.usage), timeline.meteredUsage);
  const requests = Math.max(run.metered?.requests ?? 0, timeline.meteredRequests);
  const cost = run.costUsd ?? run.metered?.costUsd;
  return (
    <dl class="summary">
      <div>
        <dt>Runtime</dt>
        <dd>{run.runtime ?? "—"}</dd>
      </div>
      <div>
        <dt>Steps</dt>
        <dd>{formatCount(run.totalSteps)}</dd>
      </div>
      <div>
        <dt>Started</dt>
        <dd>{run.startedAt !== undefined ? formatTime(run.startedAt) : run.position !== undefined ? `queued, #${run.position}` : "—"}</dd>
      </div>
      <div>
        <dt>Duration</dt>
        <dd>{formatDuration(runDuration(run))}</dd>
      </div>
      <div data-testid="usage" data-input-tokens={tokens.inputTokens} data-output-tokens={tokens.outputTokens}>
        <dt>Tokens</dt>
        <dd>
          {formatCount(tokens.inputTokens)} in · {formatCount(tokens.outputTokens)} out
          {tokens.reasoningTokens > 0 && <span class="muted small"> · {formatCount(tokens.reasoningTokens)} reasoning</span>}
          {tokens.cachedInputTokens > 0 && <span class="muted small"> · {formatCount(tokens.cachedInputTokens)} cached</span>}
        </dd>
      </div>
      <div>
        <dt>Metered</dt>
        <dd>{requests > 0 ? `${plural(requests, "call")} · ${formatCount(metered.inputTokens)} in · ${formatCount(metered.outputTokens)} out` : "—"}</dd>
      </div>
      <div data-testid="cost">
        <dt>Cost</dt>
        <dd title={cost === null ? "a model of this run has no price in the table" : undefined}>
          {formatUsd(cost)}
          {run.allocatedUsd !== undefined && <span class="muted small"> of {formatUsd(run.allocatedUsd)} allowed</span>}
        </dd>
      </div>
      {timeline.blockedRequests > 0 && (
        <div>
          <dt>Blocked</dt>
          <dd class="fail-text">{plural(timeline.blockedRequests, "request")}</dd>
        </div>
      )}
    </dl>
  );
}

/** The question from the events; when they do not have it (yet), from the checkpoint the job stopped at. */
function PendingQuestion({ run, timeline, follow, readOnly, onAnswered }: { run: RunRecord; timeline: Timeline; follow: FollowState; readOnly: boolean; onAnswered: () => void }) {
  const [fromCheckpoint, setFromCheckpoint] = useState<ToolCallView>();
  const needCheckpoint = timeline.pendingQuestion === undefined && follow.phase === "ended" && run.latestCheckpointId !== undefined;
  useEffect(() => {
    if (!needCheckpoint || !run.latestCheckpointId) return;
    let current = true;
    api
      .checkpoint(run.jobId, run.latestCheckpointId)
      .then((checkpoint) => {
        const pending = Array.isArray(checkpoint.pendingToolCalls) ? checkpoint.pendingToolCalls : [];
        const call = pending.map(toolCallOf).find((found) => found !== undefined);
        if (current && call) setFromCheckpoint(call);
      })
      .catch(() => {
        // The panel says the question is not known; the answer can still be sent.
      });
    return () => {
      current = false;
    };
  }, [needCheckpoint, run.jobId, run.latestCheckpointId]);
  return <InteractiveAnswer jobId={run.jobId} call={timeline.pendingQuestion ?? fromCheckpoint} readOnly={readOnly} onAnswered={onAnswered} />;
}
