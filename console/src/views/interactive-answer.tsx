// A job stopped by an interactive tool waits for a person: the question is the tool call's arguments. On a server
// the answer goes to POST /v1/runs/{jobId}/continue as interactiveAnswer, and the job runs on under the same id.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import type { ToolCallView } from "../event-fields.js";
import { isRecord, prettyJson } from "../event-fields.js";
import { ErrorBanner, Field, messageOf } from "./common.js";

/** The argument most tools put their question in, when there is one. */
function questionText(args: unknown): string | undefined {
  if (typeof args === "string") return args;
  if (!isRecord(args)) return undefined;
  for (const name of ["question", "message", "prompt", "text", "query"]) {
    const value = args[name];
    if (typeof value === "string" && value.trim() !== "") return value;
  }
  return undefined;
}

export function InteractiveAnswer({ jobId, call, readOnly, onAnswered }: { jobId: string; call: ToolCallView | undefined; readOnly: boolean; onAnswered: () => void }) {
  const [answer, setAnswer] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const question = call ? questionText(call.args) : undefined;

  const submit = async () => {
    setBusy(true);
    try {
      await api.continueRun(jobId, { interactiveAnswer: answer });
      setAnswer("");
      setError(undefined);
      onAnswered();
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card ask" data-testid="interactive-question">
      <h2>The expert asks{call ? <span class="muted small"> (tool {call.normalizedName})</span> : null}</h2>
      {question !== undefined && <pre class="text question">{question}</pre>}
      {call ? <pre class="code">{prettyJson(call.args)}</pre> : <p class="muted">The question is not in the events read so far.</p>}
      {!readOnly && (
        <form
          class="form"
          onSubmit={(event) => {
            event.preventDefault();
            if (answer.trim() !== "") void submit();
          }}
        >
          <ErrorBanner message={error} onDismiss={() => setError(undefined)} />
          <Field label="Your answer">
            <textarea rows={3} required data-testid="interactive-answer" value={answer} onInput={(event) => setAnswer(event.currentTarget.value)} />
          </Field>
          <div class="actions">
            <button type="submit" class="button primary" data-testid="interactive-submit" disabled={busy}>
              {busy ? "Sending…" : "Answer and continue"}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
