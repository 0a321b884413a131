// The job's checkpoints: open one to read its conversation, and (on a server) continue the job from it with a new
// query. The continuation runs under the same job id; the run view then follows its events.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { isActive, type CheckpointSummary, type RunRecord, type Session } from "../api-types.js";
import { isRecord, str } from "../event-fields.js";
import { ErrorBanner, Field, Loading, messageOf, StatusBadge } from "./common.js";
import { MessagesView } from "./messages-view.js";

export function CheckpointsView({ run, session, onContinued }: { run: RunRecord; session: Session; onContinued: () => void }) {
  const [list, setList] = useState<CheckpointSummary[]>();
  const [error, setError] = useState<string>();
  const [openId, setOpenId] = useState<string>();
  const [opened, setOpened] = useState<Record<string, unknown>>();
  const [query, setQuery] = useState("");
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const { checkpoints } = await api.checkpoints(run.jobId);
      setList([...checkpoints].sort((a, b) => (a.stepNumber ?? 0) - (b.stepNumber ?? 0)));
      setError(undefined);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };
  useEffect(() => {
    void load();
  }, [run.jobId, run.status]);

  const open = async (id: string) => {
    setOpenId(id);
    setOpened(undefined);
    try {
      setOpened(await api.checkpoint(run.jobId, id));
      setError(undefined);
    } catch (caught) {
      setError(messageOf(caught));
    }
  };

  const continueFrom = async () => {
    if (!openId || query.trim() === "") return;
    setBusy(true);
    try {
      await api.continueRun(run.jobId, { query, checkpointId: openId });
      setQuery("");
      onContinued();
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  const canContinue = !session.readOnly && !isActive(run.status);
  return (
    <div class="checkpoints">
      <ErrorBanner message={error} onDismiss={() => setError(undefined)} />
      {list === undefined && !error && <Loading what="checkpoints" />}
      {list?.length === 0 && <p class="muted">No checkpoints yet.</p>}
      {list && list.length > 0 && (
        <div class="table-wrap">
          <table class="table" data-testid="checkpoints-table">
            <thead>
              <tr>
                <th class="num">Step</th>
                <th>Status</th>
                <th>Run</th>
                <th>Checkpoint</th>
              </tr>
            </thead>
            <tbody>
              {list.map((checkpoint) => (
                <tr key={checkpoint.id} class={`clickable${checkpoint.id === openId ? " selected" : ""}`} data-testid="checkpoint-row" data-checkpoint-id={checkpoint.id} onClick={() => void open(checkpoint.id)}>
                  <td class="num">{checkpoint.stepNumber ?? "—"}</td>
                  <td>{checkpoint.status ? <StatusBadge status={checkpoint.status} /> : "—"}</td>
                  <td class="mono small">{checkpoint.runId}</td>
                  <td class="mono small">{checkpoint.id}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {openId && (
        <section class="card checkpoint-detail">
          <h2>
            Checkpoint <span class="mono">{openId}</span>
          </h2>
          {opened === undefined ? (
            !error && <Loading what="the checkpoint" />
          ) : (
            <>
              <p class="muted small">
                Step {String(opened.stepNumber ?? "?")} · {str(opened.status) ?? "?"} · expert {isRecord(opened.expert) ? (str(opened.expert.key) ?? "?") : "?"}
              </p>
              <MessagesView messages={opened.messages} />
            </>
          )}
          {canContinue && (
            <form
              class="form continue-form"
              onSubmit={(event) => {
                event.preventDefault();
                void continueFrom();
              }}
            >
              <Field label="Continue from here" hint="A new query; the job goes on from this checkpoint's conversation.">
                <textarea rows={3} required data-testid="continue-query" value={query} onInput={(event) => setQuery(event.currentTarget.value)} />
              </Field>
              <div class="actions">
                <button type="submit" class="button primary" data-testid="continue-submit" disabled={busy || query.trim() === ""}>
                  {busy ? "Continuing…" : "Continue from here"}
                </button>
              </div>
            </form>
          )}
        </section>
      )}
    </div>
  );
}
