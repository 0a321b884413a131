// One comparison: its runs by runtime while they go, then its report. A frame's navigation cannot carry the token,
// so the frame opens a short-lived signed link to the report (src/server/report-links.ts), served with the report's
// own CSP. The frame is sandboxed without scripts: report.html has none (src/compare/report-html.ts), and the sandbox
// also gives it an opaque origin, so nothing in it, all of which came out of sandboxes, can reach the console, its
// token or the API.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import type { Comparison } from "../api-types.js";
import { usePolling } from "../polling.js";
import { href } from "../route.js";
import { saveBlob } from "../workspace-file.js";
import { ErrorBanner, Loading, messageOf, StatusBadge } from "./common.js";

export function ComparisonView({ id }: { id: string }) {
  const [comparison, setComparison] = useState<Comparison>();
  const [error, setError] = useState<string>();
  const done = comparison?.status === "done";

  usePolling(
    async (signal) => {
      try {
        const next = await api.comparison(id);
        if (signal.aborted) return;
        setComparison(next);
        setError(undefined);
      } catch (caught) {
        if (!signal.aborted) setError(messageOf(caught));
      }
    },
    // Once done it does not change: one fetch is enough.
    done ? 0 : 2000,
    [id, done],
  );

  if (!comparison) return error ? <ErrorBanner message={error} /> : <Loading what={`comparison ${id}`} />;
  return (
    <section>
      <p class="crumbs">
        <a href={href({ name: "comparisons" })}>Comparisons</a> / <span class="mono">{id}</span>
      </p>
      <div class="section-head">
        <h1>
          Comparison <StatusBadge status={comparison.status} testId="comparison-status" />
        </h1>
      </div>
      <ErrorBanner message={error} />
      <div class="table-wrap">
        <table class="table" data-testid="comparison-runs">
          <thead>
            <tr>
              <th>Runtime</th>
              <th>Status</th>
              <th>Job</th>
            </tr>
          </thead>
          <tbody>
            {comparison.runs.map((run) => (
              <tr key={run.jobId} data-testid="comparison-run" data-runtime={run.runtime} data-status={run.status}>
                <td>{run.runtime}</td>
                <td>
                  <StatusBadge status={run.status} />
                </td>
                <td>
                  <a class="mono" href={href({ name: "run", jobId: run.jobId })}>
                    {run.jobId}
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {done ? <Report id={id} /> : <p class="muted">The report is made once every run has ended.</p>}
    </section>
  );
}

function Report({ id }: { id: string }) {
  const [url, setUrl] = useState<string>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let current = true;
    api
      .reportLink(id)
      .then((link) => {
        if (current) setUrl(link.url);
      })
      .catch((caught: unknown) => {
        if (current) setError(messageOf(caught));
      });
    return () => {
      current = false;
    };
  }, [id]);

  const download = () => {
    api
      .report(id)
      .then((html) => saveBlob(new Blob([html], { type: "text/html" }), `comparison-${id}.html`))
      .catch((caught: unknown) => setError(messageOf(caught)));
  };

  if (error) return <ErrorBanner message={error} />;
  if (!url) return <Loading what="the report" />;
  return (
    <section class="report">
      <div class="toolbar">
        <h2>Report</h2>
        <button type="button" class="button small" onClick={download}>
          Download report.html
        </button>
      </div>
      <iframe class="report-frame" title="Comparison report" sandbox="" src={url} data-testid="comparison-report" />
    </section>
  );
}
