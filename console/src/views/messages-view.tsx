// A checkpoint's conversation: each message with its role, its text, the tool calls it made and the results it
// got. The instruction (the expert's system prompt) is folded: it is long and the same at every checkpoint.
import { isRecord, str, textOfParts } from "../event-fields.js";
import { JsonDetails, TextDetails } from "./common.js";

const ROLES: Readonly<Record<string, string>> = {
  instructionMessage: "instruction",
  userMessage: "user",
  expertMessage: "expert",
  toolMessage: "tool",
};

export function MessagesView({ messages }: { messages: unknown }) {
  const list = Array.isArray(messages) ? messages : [];
  if (list.length === 0) return <p class="muted">This checkpoint has no messages.</p>;
  return (
    <ol class="messages" data-testid="checkpoint-messages">
      {list.map((message, index) => {
        const type = isRecord(message) ? (str(message.type) ?? "?") : "?";
        const role = ROLES[type] ?? type;
        const contents = isRecord(message) && Array.isArray(message.contents) ? message.contents : [];
        return (
          <li key={index} class={`message role-${role}`} data-role={role}>
            <div class="message-role">{role}</div>
            <div class="message-body">
              {role === "instruction" ? <TextDetails label="Instruction" text={textOfParts(contents)} /> : contents.map((part, partIndex) => <Part key={partIndex} part={part} />)}
            </div>
          </li>
        );
      })}
    </ol>
  );
}

function Part({ part }: { part: unknown }) {
  if (!isRecord(part)) return null;
  switch (part.type) {
    case "textPart":
      return <pre class="text">{str(part.text) ?? ""}</pre>;
    case "thinkingPart":
      return <TextDetails label="Thinking" text={str(part.thinking) ?? ""} />;
    case "toolCallPart":
      return (
        <div class="part-call">
          <span class="chip">call</span> <span class="tool-name">{str(part.toolName) ?? "?"}</span>
          <JsonDetails label="Arguments" value={part.args} />
        </div>
      );
    case "toolResultPart":
      return (
        <div class="part-result">
          <span class="chip">result</span> <span class="tool-name">{str(part.toolName) ?? "?"}</span>
          <TextDetails label={part.isError === true ? "Error" : "Result"} text={textOfParts(part.contents)} tone={part.isError === true ? "error" : undefined} />
        </div>
      );
    default:
      return <JsonDetails label={str(part.type) ?? "part"} value={part} />;
  }
}
