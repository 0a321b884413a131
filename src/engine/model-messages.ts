// Perstack's checkpoint messages -> the AI SDK's ModelMessages. Pure. Checkpoints are the only conversation
// state, so a run continued in a new container from any checkpoint sends the model exactly what it saw before.
import type { AssistantContent, ModelMessage, ToolResultPart as ModelToolResultPart } from "ai";
import type { Message, ToolResultPart } from "../model/perstack.js";

export interface ModelPrompt {
  /** The system prompt (the AI SDK takes it apart from the messages). */
  instructions: string;
  messages: ModelMessage[];
}

export function toModelPrompt(messages: Message[]): ModelPrompt {
  const out: ModelMessage[] = [];
  const system: string[] = [];
  for (const message of messages) {
    switch (message.type) {
      case "instructionMessage":
        system.push(message.contents.map((p) => p.text).join("\n\n"));
        break;
      case "userMessage":
        out.push({ role: "user", content: message.contents.map((p) => ({ type: "text" as const, text: p.text })) });
        break;
      case "expertMessage": {
        const content: Exclude<AssistantContent, string> = message.contents.flatMap((part): Exclude<AssistantContent, string> => {
          switch (part.type) {
            case "textPart":
              return part.text ? [{ type: "text" as const, text: part.text }] : [];
            case "thinkingPart":
              // Anthropic requires the signed thinking blocks of a tool-use turn to be sent back unchanged.
              return [
                {
                  type: "reasoning" as const,
                  text: part.thinking,
                  ...(part.signature ? { providerOptions: { anthropic: { signature: part.signature } } } : {}),
                },
              ];
            case "toolCallPart":
              return [{ type: "tool-call" as const, toolCallId: part.toolCallId, toolName: part.toolName, input: part.args ?? {} }];
            default:
              return [];
          }
        });
        if (content.length > 0) out.push({ role: "assistant", content });
        break;
      }
      case "toolMessage":
        out.push({
          role: "tool",
          content: message.contents.map((part) => ({
            type: "tool-result" as const,
            toolCallId: part.toolCallId,
            toolName: part.toolName,
            output: toolOutput(part),
          })),
        });
        break;
    }
  }
  return { instructions: system.join("\n\n"), messages: out };
}

/** Text results as text; results with an image or a file as content parts, so the model sees them. */
function toolOutput(part: ToolResultPart): ModelToolResultPart["output"] {
  if (part.contents.every((c) => c.type === "textPart")) {
    const value = part.contents.map((c) => (c.type === "textPart" ? c.text : "")).join("\n");
    return part.isError ? { type: "error-text", value } : { type: "text", value };
  }
  return {
    type: "content",
    value: part.contents.map((c) => {
      switch (c.type) {
        case "textPart":
          return { type: "text" as const, text: c.text };
        case "imageInlinePart":
          return { type: "image-data" as const, data: c.encodedData, mediaType: c.mimeType };
        case "fileInlinePart":
          return { type: "file-data" as const, data: c.encodedData, mediaType: c.mimeType };
      }
    }),
  };
}
