// A new run: POST /v1/runs with perstack.toml as text, the expert, the query, and optionally a runtime, a model and a
// workspace. On success the run's view opens and follows it from its first event.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { navigate } from "../route.js";
import { workspaceBase64 } from "../workspace-file.js";
import { ErrorBanner, Field, messageOf } from "./common.js";
import { ConfigField, RuntimeSelect, WorkspaceField } from "./form-fields.js";

export function NewRun() {
  const [config, setConfig] = useState("");
  const [expert, setExpert] = useState("");
  const [query, setQuery] = useState("");
  const [runtime, setRuntime] = useState("");
  const [model, setModel] = useState("");
  const [workspace, setWorkspace] = useState<File>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const submit = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, unknown> = { config, expert: expert.trim(), query };
      if (runtime) body.runtime = runtime;
      if (model.trim()) body.model = model.trim();
      if (workspace) body.workspace = await workspaceBase64(workspace);
      const { jobId } = await api.submitRun(body);
      navigate({ name: "run", jobId });
    } catch (caught) {
      setError(messageOf(caught));
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>New run</h1>
      <form
        class="card form"
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        <ErrorBanner message={error} onDismiss={() => setError(undefined)} />
        <ConfigField value={config} onChange={setConfig} testId="new-run-config" />
        <div class="row">
          <Field label="Expert" hint="The key of the expert in perstack.toml.">
            <input type="text" required spellcheck={false} data-testid="new-run-expert" value={expert} onInput={(event) => setExpert(event.currentTarget.value)} />
          </Field>
          <RuntimeSelect value={runtime} onChange={setRuntime} testId="new-run-runtime" />
          <Field label="Model (optional)" hint="Overrides perstack.toml's.">
            <input type="text" spellcheck={false} data-testid="new-run-model" value={model} onInput={(event) => setModel(event.currentTarget.value)} />
          </Field>
        </div>
        <Field label="Query">
          <textarea rows={4} required data-testid="new-run-query" value={query} onInput={(event) => setQuery(event.currentTarget.value)} />
        </Field>
        <WorkspaceField file={workspace} onChange={setWorkspace} testId="new-run-workspace" />
        <div class="actions">
          <button type="submit" class="button primary" data-testid="new-run-submit" disabled={busy}>
            {busy ? "Submitting…" : "Start run"}
          </button>
        </div>
      </form>
    </section>
  );
}
