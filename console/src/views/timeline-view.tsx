// The run's timeline: steps, tool calls with their arguments and results, the model's text as it streams, proxy
// decisions (blocked ones stand out) and metered model calls. Every item is text from the sandbox, shown as text.
// An item is redrawn only when the Timeline replaced it, so a long run's list stays cheap while text streams in.
import { Component } from "preact";
import type { FollowState } from "../events.js";
import type { TimelineItem } from "../timeline.js";
import { formatClock, formatCount, formatDuration } from "../format.js";
import { JsonDetails, TextDetails } from "./common.js";

export function TimelineView({ items, follow }: { items: readonly TimelineItem[]; follow: FollowState }) {
  return (
    <div>
      <FollowIndicator follow={follow} />
      <ol class="timeline" data-testid="timeline">
        {items.map((item) => (
          <ItemRow key={item.key} item={item} />
        ))}
      </ol>
      {items.length === 0 && <p class="muted empty">{follow.phase === "ended" ? "This run recorded no events." : "No events yet: the run may be queued or building its sandbox."}</p>}
    </div>
  );
}

function FollowIndicator({ follow }: { follow: FollowState }) {
  switch (follow.phase) {
    case "connecting":
      return <p class="stream-state muted">Connecting to the event stream…</p>;
    case "live":
      return (
        <p class="stream-state live">
          <span class="dot" /> Live
        </p>
      );
    case "ended":
      return <p class="stream-state muted">The run is over: every event is shown.</p>;
    case "retrying":
      return (
        <p class="stream-state warn">
          The event stream dropped ({follow.message}); reconnecting in {formatDuration(follow.inMs)}, from the last event received.
        </p>
      );
    case "failed":
      return (
        <p class="stream-state fail" data-testid="error">
          The event stream failed: {follow.message}
        </p>
      );
  }
}

class ItemRow extends Component<{ item: TimelineItem }> {
  override shouldComponentUpdate(next: { item: TimelineItem }): boolean {
    return next.item !== this.props.item;
  }

  override render() {
    return <Item item={this.props.item} />;
  }
}

function Item({ item }: { item: TimelineItem }) {
  const time = <time class="time">{formatClock(item.at)}</time>;
  switch (item.kind) {
    case "run-start":
      return (
        <li class="item run-start">
          <div class="item-head">
            <span class="item-title">{item.delegated ? `Delegated run: ${item.expertKey}` : `Run started: ${item.expertKey}`}</span>
            {time}
          </div>
          {item.query !== undefined && <TextDetails label="Query" text={item.query} />}
        </li>
      );
    case "step":
      return (
        <li class="item step">
          <span>
            Step {item.stepNumber} <span class="muted">· {item.expertKey}</span>
          </span>
          {time}
        </li>
      );
    case "tool-call": {
      const { call, result } = item;
      return (
        <li class={`item tool-call variant-${item.variant}`} data-testid="tool-call" data-tool-name={call.normalizedName}>
          <div class="item-head">
            <span class="tool-name">{call.normalizedName}</span>
            {call.toolName !== call.normalizedName && <span class="muted mono small">{call.toolName}</span>}
            {call.skillName !== "" && <span class="chip">{call.skillName}</span>}
            {item.variant !== "tool" && <span class="badge tone-ask">{item.variant}</span>}
            {time}
          </div>
          <JsonDetails label="Arguments" value={call.args} />
          {result ? (
            <TextDetails label={result.isError ? "Error" : "Result"} text={result.text} tone={result.isError ? "error" : undefined} testId="tool-result" />
          ) : (
            <p class="muted small pending">{item.variant === "interactive" ? "Waiting for an answer" : "Waiting for the result"}</p>
          )}
        </li>
      );
    }
    case "tool-result":
      return (
        <li class="item tool-call">
          <div class="item-head">
            <span class="tool-name">{item.result.toolName}</span>
            <span class="muted small">result</span>
            {time}
          </div>
          <TextDetails label={item.result.isError ? "Error" : "Result"} text={item.result.text} tone={item.result.isError ? "error" : undefined} testId="tool-result" />
        </li>
      );
    case "text":
      return item.stream === "reasoning" ? (
        <li class="item reasoning">
          <details class="fold" open={!item.done} data-testid="streaming-text" data-stream="reasoning">
            <summary>
              <span class="fold-label">Reasoning</span>
              {!item.done && <span class="muted small"> streaming…</span>}
            </summary>
            <pre class="text">{item.text}</pre>
          </details>
        </li>
      ) : (
        <li class="item model-text">
          <div class="item-head">
            <span class="item-title">Model output</span>
            {!item.done && <span class="muted small">streaming…</span>}
            {time}
          </div>
          <pre class="text" data-testid="streaming-text" data-stream="result">
            {item.text}
          </pre>
        </li>
      );
    case "run-end":
      return (
        <li class={`item run-end outcome-${item.outcome}`}>
          <div class="item-head">
            <span class="item-title">
              {item.expertKey || "Run"} {RUN_END_WORDS[item.outcome] ?? item.outcome}
            </span>
            {time}
          </div>
          {item.error && <pre class="text error-text">{item.error}</pre>}
          {item.text !== undefined && item.delegated && <TextDetails label="Answer" text={item.text} />}
        </li>
      );
    case "proxy":
      return (
        <li class={`item proxy ${item.action === "blocked" ? "blocked" : "allowed"}`} data-testid="proxy-decision" data-action={item.action}>
          <span class={`badge ${item.action === "blocked" ? "tone-fail" : "tone-ok"}`}>{item.action}</span>
          <span class="mono">
            {item.domain}
            {item.port !== undefined ? `:${item.port}` : ""}
          </span>
          {item.reason && <span class="muted">{item.reason}</span>}
          {item.count > 1 && <span class="muted small">×{item.count}</span>}
          {time}
        </li>
      );
    case "metered":
      return (
        <li class={`item metered${item.refused ? " refused" : ""}`}>
          <span class="chip">model call</span>
          {item.model && <span class="mono">{item.model}</span>}
          {item.status !== undefined && <span class="muted small">HTTP {item.status}</span>}
          {item.usage && (
            <span class="small">
              {formatCount(item.usage.inputTokens)} in · {formatCount(item.usage.outputTokens)} out
            </span>
          )}
          {item.latencyMs !== undefined && <span class="muted small">{formatDuration(item.latencyMs)}</span>}
          {item.refused && <span class="badge tone-fail">refused: {item.refused}</span>}
          {time}
        </li>
      );
    case "notice":
      return (
        <li class={`item notice tone-${item.tone}`}>
          <div class="item-head">
            <span class="item-title">{item.title}</span>
            {item.count !== undefined && item.count > 1 && <span class="muted small">×{item.count}</span>}
            {time}
          </div>
          {item.text && <pre class="notice-text">{item.text}</pre>}
          {item.detail !== undefined && <JsonDetails label="Event" value={item.detail} />}
        </li>
      );
  }
}

const RUN_END_WORDS: Readonly<Record<string, string>> = {
  completed: "completed",
  stoppedByError: "stopped by an error",
  stoppedByMaxSteps: "reached its maximum steps",
  stoppedByInteractiveTool: "asks a question",
  stoppedByDelegate: "waits for its delegates",
};
