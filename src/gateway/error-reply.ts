// The gateway's own error responses, in the shape the agent's SDK parses for the protocol, so the agent (and the
// model) see the gateway's message instead of a parse failure.
import type { GatewayProtocol } from "./types.js";

export interface ErrorReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const ANTHROPIC_TYPE: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  413: "request_too_large",
};

const GOOGLE_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  402: "FAILED_PRECONDITION",
  403: "PERMISSION_DENIED",
  413: "INVALID_ARGUMENT",
};

const BEDROCK_TYPE: Record<number, string> = {
  400: "ValidationException",
  401: "UnrecognizedClientException",
  402: "ServiceQuotaExceededException",
  403: "AccessDeniedException",
  413: "ValidationException",
};

function bodyFor(protocol: GatewayProtocol, path: string, status: number, message: string): { body: unknown; headers?: Record<string, string> } {
  switch (protocol) {
    case "anthropic":
      return { body: { type: "error", error: { type: ANTHROPIC_TYPE[status] ?? "api_error", message } } };
    case "google":
    case "vertex":
      return { body: { error: { code: status, message, status: GOOGLE_STATUS[status] ?? "UNAVAILABLE" } } };
    case "bedrock": {
      const type = BEDROCK_TYPE[status] ?? "ServiceUnavailableException";
      return { body: { message }, headers: { "x-amzn-errortype": type } };
    }
    case "ollama":
      if (path.startsWith("/api/")) return { body: { error: message } };
      break;
    case "openai":
      break;
  }
  const type = status >= 500 ? "server_error" : "invalid_request_error";
  const code = status === 401 ? "invalid_api_key" : status === 402 ? "perstack_budget_exceeded" : null;
  return { body: { error: { message, type, param: null, code } } };
}

export function errorReply(protocol: GatewayProtocol, path: string, status: number, message: string): ErrorReply {
  const { body, headers = {} } = bodyFor(protocol, path, status, message);
  const text = JSON.stringify(body);
  return {
    status,
    headers: {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(text)),
      // The Anthropic and OpenAI SDKs obey this: nothing the gateway refuses gets better by retrying, except a 502.
      "x-should-retry": String(status >= 500),
      ...headers,
    },
    body: text,
  };
}
