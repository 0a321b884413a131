// The fields a new run and a new comparison share: perstack.toml (typed, pasted or loaded from a file), and a
// workspace .tar.gz, read and base64-encoded in the browser when the form is sent.
import { useState } from "preact/hooks";
import { RUNTIME_LABELS, RUNTIMES } from "../api-types.js";
import { formatBytes } from "../format.js";
import { fileText } from "../workspace-file.js";
import { Field, messageOf } from "./common.js";

export function ConfigField({ value, onChange, testId }: { value: string; onChange: (text: string) => void; testId: string }) {
  const [problem, setProblem] = useState<string>();
  return (
    <Field label="perstack.toml" hint={problem ?? "The whole file: experts, skills, provider. Paste it, or load it from a file."}>
      <textarea class="code-input" rows={14} spellcheck={false} required data-testid={testId} value={value} onInput={(event) => onChange(event.currentTarget.value)} />
      <input
        type="file"
        accept=".toml,text/plain"
        class="file-inline"
        aria-label="Load perstack.toml from a file"
        onChange={async (event) => {
          const file = event.currentTarget.files?.[0];
          if (!file) return;
          try {
            onChange(await fileText(file));
            setProblem(undefined);
          } catch (error) {
            setProblem(messageOf(error));
          }
        }}
      />
    </Field>
  );
}

export function WorkspaceField({ file, onChange, testId }: { file: File | undefined; onChange: (file: File | undefined) => void; testId: string }) {
  return (
    <Field label="Workspace (optional)" hint={file ? `${file.name}, ${formatBytes(file.size)}` : "A .tar.gz of the files the expert works on (tar czf workspace.tar.gz -C <dir> .)."}>
      <input type="file" accept=".tar.gz,.tgz,application/gzip" data-testid={testId} onChange={(event) => onChange(event.currentTarget.files?.[0] ?? undefined)} />
    </Field>
  );
}

export function RuntimeSelect({ value, onChange, testId }: { value: string; onChange: (runtime: string) => void; testId: string }) {
  return (
    <Field label="Runtime">
      <select data-testid={testId} value={value} onChange={(event) => onChange(event.currentTarget.value)}>
        <option value="">perstack.toml's (default perstack)</option>
        {RUNTIMES.map((runtime) => (
          <option key={runtime} value={runtime}>
            {RUNTIME_LABELS[runtime] ?? runtime}
          </option>
        ))}
      </select>
    </Field>
  );
}
