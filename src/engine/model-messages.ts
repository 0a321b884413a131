// Perstack's checkpoint messages -> the AI SDK's ModelMessages. Pure. Checkpoints are the only conversation
// state, so a run continued in a new container from any checkpoint sends the model exactly what it saw before.
import type { AssistantContent, ModelMessage } from "ai";
import type { Message } from "../model/perstack.js";

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
          content: message.contents.map((part) => {
            const value = part.contents.map((c) => c.text).join("\n");
            return {
              type: "tool-result" as const,
              toolCallId: part.toolCallId,
              toolName: part.toolName,
              output: part.isError ? { type: "error-text" as const, value } : { type: "text" as const, value },
            };
          }),
        });
        break;
    }
  }
  return { instructions: system.join("\n\n"), messages: out };
}
