// The tenant's runs, newest first, refreshed every 2 s while the tab is visible. The status filter is the API's
// (?status=); the text and runtime filters narrow what was fetched. Older pages come on demand and stay.
import { useMemo, useState } from "preact/hooks";
import { api } from "../api.js";
import { RUN_STATUSES, RUNTIMES, type RunRecord, type Session } from "../api-types.js";
import { formatCount, formatDuration, formatTime, formatUsd, runDuration } from "../format.js";
import { usePolling } from "../polling.js";
import { href, navigate } from "../route.js";
import { ErrorBanner, Loading, messageOf, StatusBadge } from "./common.js";

const PAGE = 50;
const POLL_MS = 2000;

export function JobsList({ session }: { session: Session }) {
  const [status, setStatus] = useState("");
  const [text, setText] = useState("");
  const [runtime, setRuntime] = useState("");
  const [latest, setLatest] = useState<{ runs: RunRecord[]; next?: string }>();
  const [older, setOlder] = useState<{ runs: RunRecord[]; next?: string }>();
  const [error, setError] = useState<string>();
  const [loadingMore, setLoadingMore] = useState(false);

  usePolling(
    async (signal) => {
      try {
        // The signal only says to drop the answer: aborting the request would show as a failed request.
        const page = await api.runs({ ...(status ? { status } : {}), limit: PAGE });
        if (signal.aborted) return;
        setLatest(page);
        setError(undefined);
      } catch (caught) {
        if (!signal.aborted) setError(messageOf(caught));
      }
    },
    POLL_MS,
    [status],
  );

  const loadMore = async () => {
    const before = older ? older.next : latest?.next;
    if (!before) return;
    setLoadingMore(true);
    try {
      const page = await api.runs({ ...(status ? { status } : {}), limit: PAGE, before });
      setOlder({ runs: [...(older?.runs ?? []), ...page.runs], ...(page.next ? { next: page.next } : {}) });
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setLoadingMore(false);
    }
  };

  const runs = useMemo(() => {
    const seen = new Set<string>();
    const all = [...(latest?.runs ?? []), ...(older?.runs ?? [])].filter((run) => !seen.has(run.jobId) && seen.add(run.jobId));
    const needle = text.trim().toLowerCase();
    return all.filter((run) => (!runtime || run.runtime === runtime) && (!needle || run.jobId.toLowerCase().includes(needle) || (run.expert ?? "").toLowerCase().includes(needle)));
  }, [latest, older, text, runtime]);

  const runtimes = useMemo(() => [...new Set([...RUNTIMES, ...(latest?.runs ?? []).map((run) => run.runtime).filter((name): name is string => !!name)])], [latest]);
  const more = older ? older.next : latest?.next;
  const now = Date.now();

  return (
    <section>
      <div class="section-head">
        <h1>Runs</h1>
        {!session.readOnly && (
          <a class="button primary" href={href({ name: "new-run" })}>
            New run
          </a>
        )}
      </div>
      <div class="filters">
        <select
          data-testid="filter-status"
          aria-label="Status"
          value={status}
          onChange={(event) => {
            setStatus(event.currentTarget.value);
            setOlder(undefined);
            setLatest(undefined);
          }}
        >
          <option value="">All statuses</option>
          {RUN_STATUSES.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
        <select data-testid="filter-runtime" aria-label="Runtime" value={runtime} onChange={(event) => setRuntime(event.currentTarget.value)}>
          <option value="">All runtimes</option>
          {runtimes.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
        <input type="search" data-testid="filter-text" placeholder="Filter by expert or job id" aria-label="Filter by expert or job id" value={text} onInput={(event) => setText(event.currentTarget.value)} />
      </div>
      <ErrorBanner message={error} />
      {latest === undefined && !error ? (
        <Loading what="runs" />
      ) : (
        <div class="table-wrap">
          <table class="table jobs" data-testid="jobs-table">
            <thead>
              <tr>
                <th>Status</th>
                <th>Job</th>
                <th>Expert</th>
                <th>Runtime</th>
                <th class="num">Steps</th>
                <th class="num">Tokens in / out</th>
                <th class="num">Cost</th>
                <th>Started</th>
                <th class="num">Duration</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.jobId} class="clickable" data-testid="job-row" data-job-id={run.jobId} data-status={run.status} onClick={() => navigate({ name: "run", jobId: run.jobId })}>
                  <td>
                    <StatusBadge status={run.status} />
                    {run.status === "queued" && run.position !== undefined && <span class="muted small"> #{run.position}</span>}
                  </td>
                  <td>
                    <a class="mono" href={href({ name: "run", jobId: run.jobId })}>
                      {run.jobId}
                    </a>
                  </td>
                  <td>{run.expert ?? "—"}</td>
                  <td>{run.runtime ?? "—"}</td>
                  <td class="num">{formatCount(run.totalSteps)}</td>
                  <td class="num">{run.usage ? `${formatCount(run.usage.inputTokens)} / ${formatCount(run.usage.outputTokens)}` : "—"}</td>
                  <td class="num">{formatUsd(run.costUsd ?? run.metered?.costUsd)}</td>
                  <td>{formatTime(run.startedAt ?? run.submittedAt, now)}</td>
                  <td class="num">{formatDuration(runDuration(run, now))}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {runs.length === 0 && <p class="empty muted">{text || runtime || status ? "No run matches these filters." : session.readOnly ? "No runs in this directory yet." : "No runs yet. Start one with New run."}</p>}
        </div>
      )}
      {more && (
        <div class="actions">
          <button type="button" class="button" disabled={loadingMore} onClick={() => void loadMore()}>
            {loadingMore ? "Loading…" : "Load older runs"}
          </button>
        </div>
      )}
    </section>
  );
}
