// The tenant's comparisons, newest first: each one's runs by runtime with their status, refreshed while any runs;
// on a server, the form that starts a new one below them.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import type { ComparisonSummary, Session } from "../api-types.js";
import { formatTime } from "../format.js";
import { usePolling } from "../polling.js";
import { href, navigate } from "../route.js";
import { ErrorBanner, Loading, messageOf, StatusBadge } from "./common.js";
import { NewComparison } from "./new-comparison.js";

export function ComparisonsList({ session }: { session: Session }) {
  const [list, setList] = useState<ComparisonSummary[]>();
  const [error, setError] = useState<string>();
  const running = list?.some((comparison) => comparison.status === "running") ?? true;

  usePolling(
    async (signal) => {
      try {
        const { comparisons } = await api.comparisons();
        if (signal.aborted) return;
        setList(comparisons);
        setError(undefined);
      } catch (caught) {
        if (!signal.aborted) setError(messageOf(caught));
      }
    },
    running ? 2000 : 10_000,
    [running],
  );

  return (
    <section>
      <div class="section-head">
        <h1>Comparisons</h1>
      </div>
      <p class="muted">One expert and query on several runtimes, side by side: time, tokens, cost and result.</p>
      <ErrorBanner message={error} />
      {list === undefined && !error && <Loading what="comparisons" />}
      {list && (
        <div class="table-wrap">
          <table class="table" data-testid="comparisons-table">
            <thead>
              <tr>
                <th>Status</th>
                <th>Comparison</th>
                <th>Created</th>
                <th>Runs</th>
              </tr>
            </thead>
            <tbody>
              {list.map((comparison) => (
                <tr key={comparison.id} class="clickable" data-testid="comparison-row" data-comparison-id={comparison.id} data-status={comparison.status} onClick={() => navigate({ name: "comparison", id: comparison.id })}>
                  <td>
                    <StatusBadge status={comparison.status} />
                  </td>
                  <td>
                    <a class="mono" href={href({ name: "comparison", id: comparison.id })}>
                      {comparison.id}
                    </a>
                  </td>
                  <td>{formatTime(comparison.createdAt)}</td>
                  <td>
                    <span class="run-chips">
                      {comparison.runs.map((run) => (
                        <span key={run.jobId} class="run-chip">
                          <span class="chip">{run.runtime}</span> <StatusBadge status={run.status} />
                        </span>
                      ))}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.length === 0 && <p class="empty muted">{session.readOnly ? "No comparisons in this directory (perstack compare makes them)." : "No comparisons yet."}</p>}
        </div>
      )}
      {!session.readOnly && <NewComparison />}
    </section>
  );
}
