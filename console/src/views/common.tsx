// Small pieces every view uses. Everything here renders values as text: Preact escapes what it puts in text nodes
// and attributes, and nothing in the console ever sets inner HTML, because most of what it shows came out of a
// sandbox.
import type { ComponentChildren } from "preact";
import { prettyJson } from "../event-fields.js";
import { clip } from "../format.js";

const STATUS_LABELS: Readonly<Record<string, string>> = {
  queued: "queued",
  running: "running",
  completed: "completed",
  stoppedByError: "error",
  stoppedByMaxSteps: "max steps",
  stoppedByInteractiveTool: "waiting for answer",
  stoppedByDelegate: "waiting for delegate",
  stoppedByExceededMaxSteps: "max steps",
  cancelled: "cancelled",
  proceeding: "proceeding",
  init: "init",
  done: "done",
};

const STATUS_TONES: Readonly<Record<string, string>> = {
  queued: "neutral",
  running: "live",
  completed: "ok",
  done: "ok",
  stoppedByError: "fail",
  stoppedByMaxSteps: "warn",
  stoppedByExceededMaxSteps: "warn",
  stoppedByInteractiveTool: "ask",
  stoppedByDelegate: "neutral",
  cancelled: "neutral",
};

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span class={`badge tone-${STATUS_TONES[status] ?? "neutral"}`} data-testid={testId} data-status={status} title={status}>
      {STATUS_LABELS[status] ?? status}
    </span>
  );
}

export function ErrorBanner({ message, onDismiss }: { message: string | undefined; onDismiss?: () => void }) {
  if (!message) return null;
  return (
    <div class="banner banner-error" role="alert" data-testid="error">
      <span>{message}</span>
      {onDismiss && (
        <button type="button" class="link-button" onClick={onDismiss}>
          Dismiss
        </button>
      )}
    </div>
  );
}

/** A value as JSON, folded behind a one-line preview. */
export function JsonDetails({ label, value, open }: { label: string; value: unknown; open?: boolean }) {
  const text = prettyJson(value);
  return (
    <details class="fold" open={open}>
      <summary>
        <span class="fold-label">{label}</span> <code class="preview">{clip(text, 120)}</code>
      </summary>
      <pre class="code">{text}</pre>
    </details>
  );
}

/** A long text, folded behind its first line. */
export function TextDetails({ label, text, tone, testId, open }: { label: string; text: string; tone?: "error"; testId?: string; open?: boolean }) {
  return (
    <details class={`fold${tone === "error" ? " fold-error" : ""}`} data-testid={testId} open={open}>
      <summary>
        <span class="fold-label">{label}</span> <span class="preview">{clip(text, 120) || "(empty)"}</span>
      </summary>
      <pre class="text">{text}</pre>
    </details>
  );
}

export function Field({ label, hint, children }: { label: string; hint?: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="field-label">{label}</span>
      {children}
      {hint && <span class="field-hint">{hint}</span>}
    </label>
  );
}

export function Loading({ what }: { what: string }) {
  return <p class="muted loading">Loading {what}…</p>;
}

/** The message of whatever was thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
