// Which request paths belong to a provider's model API, per protocol. The gateway forwards nothing else: the
// token spends the run's real key, so it must buy model calls only, not account, file, fine-tuning, batch or
// model-management endpoints (an ollama token must not be able to pull or delete the host's models).
// Paths are matched as the agent sends them, before the upstream's own path prefix is put in front.
import type { GatewayProtocol } from "./types.js";

export interface ApiRoute {
  methods: readonly string[];
  pattern: RegExp;
}

const POST = ["POST"] as const;
const GET = ["GET"] as const;
const READ_OR_CALL = ["GET", "POST"] as const;

// One path segment of a name (a model, a deployment): no slash, no dot-only segment (traversal is refused before).
const NAME = "[^/]+";

/** OpenAI and the providers that copy it: api.openai.com/v1, DeepSeek without /v1, Azure's /openai/v1 and deployments. */
const OPENAI_ROOT = `(?:/v1|/openai(?:/v1|/deployments/${NAME})?)?`;

function routes(protocol: GatewayProtocol, vertex?: { project: string; location: string }): ApiRoute[] {
  switch (protocol) {
    case "anthropic":
      return [
        { methods: POST, pattern: /^\/v1\/messages(?:\/count_tokens)?$/ },
        { methods: GET, pattern: /^\/v1\/models(?:\/[^/]+)?$/ },
      ];
    case "openai":
      return [
        { methods: READ_OR_CALL, pattern: new RegExp(`^${OPENAI_ROOT}/responses(?:/${NAME})*$`) },
        { methods: POST, pattern: new RegExp(`^${OPENAI_ROOT}/(?:chat/completions|completions|embeddings)$`) },
        { methods: GET, pattern: new RegExp(`^${OPENAI_ROOT}/models(?:/${NAME})?$`) },
      ];
    case "google":
      return [
        { methods: POST, pattern: /^\/(?:v1|v1beta|v1alpha)\/models\/[^/]+$/ },
        { methods: GET, pattern: /^\/(?:v1|v1beta|v1alpha)\/models(?:\/[^/]+)?$/ },
      ];
    case "ollama":
      return [
        { methods: POST, pattern: /^\/api\/(?:chat|generate|embed|embeddings|show)$/ },
        { methods: GET, pattern: /^\/api\/(?:tags|version|ps)$/ },
        { methods: POST, pattern: /^\/v1\/(?:chat\/completions|completions|embeddings|responses)$/ },
        { methods: GET, pattern: /^\/v1\/models(?:\/[^/]+)?$/ },
      ];
    case "bedrock":
      return [
        {
          methods: POST,
          pattern: /^\/model\/[^/]+\/(?:converse|converse-stream|invoke|invoke-with-response-stream|count-tokens)$/,
        },
      ];
    case "vertex": {
      if (!vertex) return [];
      // The config validates both as plain identifiers, so they need no escaping.
      const base = `/(?:v1|v1beta1)/projects/${vertex.project}/locations/${vertex.location}/publishers/google/models`;
      return [
        { methods: POST, pattern: new RegExp(`^${base}/${NAME}$`) },
        { methods: GET, pattern: new RegExp(`^${base}(?:/${NAME})?$`) },
      ];
    }
  }
}

/** Whether `method path` (path without query) is a call into the provider's model API. */
export function isApiRoute(
  protocol: GatewayProtocol,
  method: string,
  path: string,
  vertex?: { project: string; location: string },
): boolean {
  return routes(protocol, vertex).some((route) => route.methods.includes(method) && route.pattern.test(path));
}

/**
 * Whether a raw request path could climb out of where it seems to point once some server decodes it: a `.` or
 * `..` segment, also percent-encoded (once or more), a backslash, or a NUL. Encoded slashes alone are allowed:
 * Bedrock model ARNs travel as `%2F` inside one segment.
 */
export function hasPathTraversal(rawPath: string): boolean {
  let current = rawPath;
  for (let round = 0; round < 4; round += 1) {
    if (/[\\\0]/.test(current)) return true;
    if (current.split(/[/\\]/).some((segment) => segment === "." || segment === "..")) return true;
    let decoded: string;
    try {
      decoded = decodeURIComponent(current);
    } catch {
      return true; // malformed escapes: no honest client sends them
    }
    if (decoded === current) return false;
    current = decoded;
  }
  return true; // encoded four times over: nobody does that by accident
}

/** The model a path names, for Gemini/Vertex (`models/<model>:<action>`) and Bedrock (`/model/<id>/...`). */
export function modelFromPath(protocol: GatewayProtocol, path: string): string | undefined {
  const match =
    protocol === "bedrock" ? /^\/model\/([^/]+)\//.exec(path) : protocol === "google" || protocol === "vertex" ? /\/models\/([^/:]+)(?::|$)/.exec(path) : null;
  if (!match?.[1]) return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
}
