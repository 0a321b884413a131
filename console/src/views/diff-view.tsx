// The workspace's changes against the upload (GET /v1/runs/{jobId}/diff), a unified diff shown line by line as
// text with a class per kind of line. File names and contents come from the sandbox: never markup.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api } from "../api.js";
import type { RunRecord, Session } from "../api-types.js";
import { formatBytes } from "../format.js";
import { saveBlob } from "../workspace-file.js";
import { ErrorBanner, Loading, messageOf } from "./common.js";
import { diffLineClasses } from "../diff-lines.js";

/** Past this many lines the rest is left out: a browser would crawl, and the workspace download has it all. */
const MAX_LINES = 20_000;

export function DiffView({ run, session }: { run: RunRecord; session: Session }) {
  const [diff, setDiff] = useState<string>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(false);
  const started = run.startedAt !== undefined || (run.status !== "queued" && run.status !== "cancelled");
  const local = session.mode === "local";

  const load = async () => {
    setLoading(true);
    try {
      setDiff(await api.diff(run.jobId));
      setError(undefined);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    if (started && !local) void load();
  }, [run.jobId, started, local]);

  const { lines, classes, bytes } = useMemo(() => {
    const all = diff === undefined || diff === "" ? [] : diff.replace(/\n$/, "").split("\n");
    return { lines: all, classes: diffLineClasses(all.slice(0, MAX_LINES)), bytes: diff === undefined ? 0 : new TextEncoder().encode(diff).length };
  }, [diff]);

  // A local run works in the user's own directory: there is no upload to compare with, and no route for it.
  if (local) return <p class="muted">A local run changes your workspace itself: see its changes there (git diff).</p>;
  if (!started) return <p class="muted">The run has not started: there are no changes yet.</p>;

  const download = async () => {
    try {
      saveBlob(await api.workspace(run.jobId), `${run.jobId}-workspace.tar.gz`);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };

  return (
    <div>
      <div class="toolbar">
        <button type="button" class="button small" disabled={loading} onClick={() => void load()}>
          {loading ? "Loading…" : "Refresh"}
        </button>
        <button type="button" class="button small" onClick={() => void download()}>
          Download workspace (.tar.gz)
        </button>
        {diff !== undefined && <span class="muted small">{formatBytes(bytes)}</span>}
      </div>
      <ErrorBanner message={error} />
      {diff === undefined && !error && <Loading what="the diff" />}
      {diff !== undefined && lines.length === 0 && <p class="muted">No changes to the workspace.</p>}
      {lines.length > 0 && (
        <pre class="diff" data-testid="diff-view">
          {lines.slice(0, MAX_LINES).map((line, index) => (
            <span key={index} class={`line ${classes[index]}`}>
              {line}
              {"\n"}
            </span>
          ))}
        </pre>
      )}
      {lines.length > MAX_LINES && <p class="muted">{lines.length - MAX_LINES} more lines are not shown; download the workspace to see everything.</p>}
    </div>
  );
}
