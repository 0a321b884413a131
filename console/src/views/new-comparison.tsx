// A new comparison: the same expert and query on each chosen runtime (POST /v1/comparisons), each its own job on
// its own copy of the workspace. It sits under the list of comparisons, where one looks for it.
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { RUNTIME_LABELS, RUNTIMES } from "../api-types.js";
import { navigate } from "../route.js";
import { workspaceBase64 } from "../workspace-file.js";
import { ErrorBanner, Field, messageOf } from "./common.js";
import { ConfigField, WorkspaceField } from "./form-fields.js";

export function NewComparison() {
  const [config, setConfig] = useState("");
  const [expert, setExpert] = useState("");
  const [query, setQuery] = useState("");
  const [runtimes, setRuntimes] = useState<string[]>([]);
  const [model, setModel] = useState("");
  const [workspace, setWorkspace] = useState<File>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const submit = async () => {
    if (runtimes.length === 0) {
      setError("choose at least one runtime to compare");
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      const body: Record<string, unknown> = { config, expert: expert.trim(), query, runtimes: RUNTIMES.filter((name) => runtimes.includes(name)) };
      if (model.trim()) body.model = model.trim();
      if (workspace) body.workspace = await workspaceBase64(workspace);
      const { id } = await api.submitComparison(body);
      navigate({ name: "comparison", id });
    } catch (caught) {
      setError(messageOf(caught));
      setBusy(false);
    }
  };

  return (
    <section class="new-comparison">
      <h2>New comparison</h2>
      <form
        class="card form"
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
      >
        <ErrorBanner message={error} onDismiss={() => setError(undefined)} />
        <ConfigField value={config} onChange={setConfig} testId="new-comparison-config" />
        <div class="row">
          <Field label="Expert">
            <input type="text" required spellcheck={false} data-testid="new-comparison-expert" value={expert} onInput={(event) => setExpert(event.currentTarget.value)} />
          </Field>
          <Field label="Model (optional)" hint="The same model for every runtime; default: perstack.toml's.">
            <input type="text" spellcheck={false} data-testid="new-comparison-model" value={model} onInput={(event) => setModel(event.currentTarget.value)} />
          </Field>
        </div>
        <Field label="Runtimes" hint="Ctrl-click (⌘-click) to choose several.">
          <select
            multiple
            size={RUNTIMES.length}
            data-testid="new-comparison-runtimes"
            onChange={(event) => setRuntimes(Array.from(event.currentTarget.selectedOptions, (option) => option.value))}
          >
            {RUNTIMES.map((runtime) => (
              <option key={runtime} value={runtime} selected={runtimes.includes(runtime)}>
                {RUNTIME_LABELS[runtime] ?? runtime}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Query">
          <textarea rows={4} required data-testid="new-comparison-query" value={query} onInput={(event) => setQuery(event.currentTarget.value)} />
        </Field>
        <WorkspaceField file={workspace} onChange={setWorkspace} testId="new-comparison-workspace" />
        <div class="actions">
          <button type="submit" class="button primary" data-testid="new-comparison-submit" disabled={busy}>
            {busy ? "Submitting…" : "Start comparison"}
          </button>
        </div>
      </form>
    </section>
  );
}
