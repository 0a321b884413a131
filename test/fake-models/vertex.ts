// The Vertex AI part of the fake model server: Gemini models on Vertex, which speak the Gemini API's wire format
// (gemini.ts answerModelAction) under a project/location path and with OAuth bearer tokens instead of API keys.
// It is a protocol of its own ("vertex": own script, turn state and request log) so a test can tell a Vertex
// client from a Gemini API one on the same server.
//
// API endpoints (v1beta1, which @ai-sdk/google-vertex uses, or v1):
//   POST /v1beta1/projects/<project>/locations/<location>/publishers/google/models/<model>:streamGenerateContent
//        `?alt=sse`: SSE like the Gemini fake; without it a streamed JSON array, as Vertex sends it
//   POST .../models/<model>:generateContent     one JSON GenerateContentResponse
//   POST .../models/<model>:countTokens         {"totalTokens": n}
//   POST /token, /_oauth                        the OAuth token endpoint and its control endpoint (oauth.ts)
//
// Every API request must carry `Authorization: Bearer <token>` with a token this server's /token issued (and
// not expired); anything else is answered with Google's 401 UNAUTHENTICATED body, logged as kind "other" and
// leaves the script alone. The log notes `auth` ("issued-token" | "expired-token" | "unknown-bearer" | "none")
// and never the token. Token requests are logged here too (see oauth.ts).

import type { ServerResponse } from "node:http";
import type { ApiRequest, Protocol } from "./script.ts";
import { ScriptState } from "./script.ts";
import type { GenerateContentApi } from "./gemini.ts";
import { answerModelAction, json, sendError } from "./gemini.ts";
import type { BearerCheck } from "./oauth.ts";
import { createOAuth } from "./oauth.ts";

const EXHAUSTED_REPLY = "The fake Vertex AI script has no more steps.";

const MODEL_PATH =
  /^\/(v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):([A-Za-z]+)$/;

/** Google's answer to a request without valid credentials (what Vertex sends, ErrorInfo included). */
function sendUnauthenticated(res: ServerResponse, check: BearerCheck, method: string): void {
  const missing = check === "none";
  const message = missing
    ? "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
    : "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
  const reason = missing ? "CREDENTIALS_MISSING" : check === "expired-token" ? "ACCESS_TOKEN_EXPIRED" : "ACCESS_TOKEN_TYPE_UNSUPPORTED";
  res.setHeader("www-authenticate", 'Bearer realm="https://accounts.google.com/"');
  json(res, 401, {
    error: {
      code: 401,
      message,
      status: "UNAUTHENTICATED",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason,
          domain: "googleapis.com",
          metadata: { service: "aiplatform.googleapis.com", method },
        },
      ],
    },
  });
}

function rpcMethod(version: string, action: string): string {
  const name = action.length > 0 ? `${action[0]!.toUpperCase()}${action.slice(1)}` : action;
  return `google.cloud.aiplatform.${version}.PredictionService.${name}`;
}

export function createVertex(): Protocol {
  const state = new ScriptState(["authorization", "proxy-authorization", "x-goog-api-key"]);
  const api: GenerateContentApi = { state, exhaustedReply: EXHAUSTED_REPLY, jsonArrayWithoutSse: true };
  const oauth = createOAuth();

  function handle(request: ApiRequest): void {
    const { req, res, method, url } = request;
    if (url.pathname === "/token") {
      oauth.handleToken(request, state);
      return;
    }
    if (url.pathname === "/_oauth") {
      oauth.handleControl(request);
      return;
    }

    const record = state.record(req, request.logBody);
    const match = MODEL_PATH.exec(url.pathname);
    const check = oauth.checkBearer(req.headers.authorization);
    record.auth = check;
    if (check !== "issued-token") {
      if (match) record.model = decodeURIComponent(match[4]!);
      sendUnauthenticated(res, check, match ? rpcMethod(match[1]!, match[5]!) : "");
      return;
    }
    if (method === "POST" && match && answerModelAction(api, request, record, decodeURIComponent(match[4]!), match[5]!)) {
      return;
    }
    sendError(res, { status: 404, type: "NOT_FOUND", message: `${method} ${url.pathname} is not found.` });
  }

  return {
    name: "vertex",
    state,
    badRequestType: "INVALID_ARGUMENT",
    serverErrorType: "INTERNAL",
    owns: (_method, pathname) =>
      MODEL_PATH.test(pathname) ||
      /^\/v1beta1\//.test(pathname) ||
      /^\/v1\/projects\//.test(pathname) ||
      pathname === "/token" ||
      pathname === "/_oauth",
    handle,
    sendError,
  };
}
