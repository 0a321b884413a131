// The gateway's HTTP server: checks the run's token, keeps requests to the provider's model API, swaps the agent's
// token for the real credentials, forwards to the one upstream with http-proxy, and meters each response as it
// streams back. Everything it knows leaves as JSON records through `emit` (main.ts prints them on stdout).
//
// Request bodies are buffered (with a cap): SigV4 signs a hash of the body, and the request's `model` is read from
// it. Response bodies are never buffered: they are teed into the usage meter as they pass, so streams reach the
// agent chunk by chunk.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Readable } from "node:stream";
import tls from "node:tls";
import zlib from "node:zlib";
import httpProxy from "http-proxy";
import { PrivateUpstreamError, isAllowedUpstream, publicOnlyLookup, type ResolveAll } from "./address-policy.js";
import { hasPathTraversal, isApiRoute, modelFromPath } from "./api-routes.js";
import { UsageLedger, budgetMessage } from "./budget.js";
import { CLIENT_AUTH_HEADERS, presentedTokens, tokenChecker } from "./client-token.js";
import { errorReply } from "./error-reply.js";
import type { GatewayConfig } from "./gateway-config.js";
import { costOf } from "./pricing.js";
import type { PriceTable } from "./pricing.js";
import { parseRequestTarget, upstreamUrl } from "./request-target.js";
import { asksForStreamUsage, withStreamUsage } from "./stream-usage.js";
import type { GatewayRecord, GatewayRefusal, GatewayUsageRecord, MeteredUsage, UsageMeter } from "./types.js";
import type { UpstreamAuth } from "./upstream-auth.js";
import { meterFor } from "./usage/meter.js";

export interface GatewayOptions {
  config: GatewayConfig;
  /** The run's token, which the agent presents instead of a provider key. */
  token: string;
  auth: UpstreamAuth;
  priceTable: PriceTable;
  /** Receives every record (usage, refusals, budget, warnings); must not throw. */
  emit: (record: GatewayRecord) => void;
  /** How the connect-time filter resolves names (refusePrivateUpstreams); tests inject one. Default dns.lookup. */
  resolve?: ResolveAll;
}

export interface RunningGateway {
  port: number;
  /** Stops accepting, lets in-flight responses finish for up to `graceMs`, then cuts what is left. */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024;
/** Request bodies up to this size are parsed for their `model` field; larger ones are forwarded unread. */
const MAX_PARSED_BODY_BYTES = 1024 * 1024;

// Hop-by-hop headers (RFC 9110 7.6.1) and what a client could use to tell the upstream who it is behind the gateway.
const DROPPED_REQUEST_HEADERS = new Set([
  ...CLIENT_AUTH_HEADERS,
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
  // The gateway has read the whole body already; the upstream must not be asked to wait for it.
  "expect",
  "forwarded",
  "via",
  "x-real-ip",
]);

/** What the gateway remembers about a forwarded request until its response has ended. */
interface Forwarded {
  requestId: string;
  method: string;
  startedAt: number;
  /** The upstream path without its query. */
  path: string;
  /** The model the request named (body or path), the fallback when the response names none. */
  requestModel: string | undefined;
}

function upstreamCa(config: GatewayConfig): string[] | undefined {
  if (!config.caFile) return undefined; // Node's default roots, NODE_EXTRA_CA_CERTS included
  return [...tls.getCACertificates("default"), readFileSync(config.caFile, "utf8")];
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large" | "aborted"> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (part: Buffer): void => {
      size += part.length;
      if (size > limit) {
        req.off("data", onData);
        resolve("too-large");
        return;
      }
      parts.push(part);
    };
    req.on("data", onData);
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("close", () => {
      if (!req.complete) resolve("aborted");
    });
    req.on("error", reject);
  });
}

// Whatever the content type says: some clients send JSON without one.
function modelFromBody(body: Buffer): string | undefined {
  if (body.length === 0 || body.length > MAX_PARSED_BODY_BYTES || body[0] !== 0x7b /* { */) return undefined;
  try {
    const parsed = JSON.parse(body.toString("utf8")) as unknown;
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const model = (parsed as { model?: unknown }).model;
    return typeof model === "string" && model.length > 0 && model.length <= 200 ? model : undefined;
  } catch {
    return undefined;
  }
}

function decompressorFor(encoding: string | undefined): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | undefined {
  switch (encoding?.trim().toLowerCase()) {
    case "gzip":
    case "x-gzip":
      return zlib.createGunzip();
    case "deflate":
      return zlib.createInflate();
    case "br":
      return zlib.createBrotliDecompress();
    default:
      return undefined;
  }
}

/**
 * Feeds a response body to the meter alongside the pipe to the client, and resolves once the meter has seen all of
 * it (or all there was, if the response was cut). The gateway asks for identity encoding, but an upstream that
 * compresses anyway is metered through a decompressor.
 */
function teeIntoMeter(proxyRes: IncomingMessage, meter: UsageMeter): Promise<void> {
  return new Promise((resolve) => {
    const decompressor = decompressorFor(proxyRes.headers["content-encoding"]);
    if (decompressor) {
      decompressor.on("data", (chunk: Buffer) => meter.write(chunk));
      decompressor.on("error", () => resolve());
      decompressor.on("end", () => resolve());
      proxyRes.on("data", (chunk: Buffer) => decompressor.write(chunk));
      proxyRes.on("close", () => decompressor.end());
      return;
    }
    proxyRes.on("data", (chunk: Buffer) => meter.write(chunk));
    proxyRes.on("close", () => resolve());
  });
}

export function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { config, auth, priceTable, emit } = options;
  const { protocol } = config;
  const checkToken = tokenChecker(options.token);
  const ledger = new UsageLedger(config.budgets);
  const maxRequestBytes = config.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  const unpricedModels = new Set<string>();
  const forwarded = new WeakMap<IncomingMessage, Forwarded>();

  const upstreamIsTls = config.upstream.protocol === "https:";
  // Every new connection's addresses are checked as it is made: what the server checked at submission may have
  // been rebound since. An upstream the operator allowed is connected to wherever it is.
  const refusePrivate = config.refusePrivateUpstreams && !isAllowedUpstream(config.upstream, config.refusePrivateUpstreams.allow);
  const lookup = refusePrivate ? { lookup: publicOnlyLookup(options.resolve) } : {};
  const agent = upstreamIsTls
    ? new https.Agent({ keepAlive: true, ca: upstreamCa(config), ...lookup })
    : new http.Agent({ keepAlive: true, ...lookup });
  const target = {
    protocol: config.upstream.protocol,
    host: config.upstream.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: config.upstream.port || (upstreamIsTls ? "443" : "80"),
  };
  // No proxy timeout: a model may think for many minutes before and between streamed chunks; the agent decides
  // how long it waits, and its giving up (closing the connection) ends the upstream request.
  // changeOrigin is off because handle() sets the Host header itself: to the upstream's, IPv6 brackets included, and
  // to the very string SigV4 signed.
  const proxy = httpProxy.createProxyServer({ secure: true, xfwd: false, changeOrigin: false });

  const refuse = (
    res: ServerResponse,
    requestId: string,
    method: string,
    path: string,
    status: number,
    reason: GatewayRefusal,
    message: string,
  ): void => {
    emit({ type: "gatewayRefused", requestId, method, status, reason });
    const reply = errorReply(protocol, path, status, message);
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body);
  };

  const account = (record: GatewayUsageRecord, usage: MeteredUsage | undefined): void => {
    emit(record);
    if (!usage) return;
    const cost = costOf(record.model, usage, priceTable);
    if (cost === null && config.budgets?.maxCostUsd !== undefined) {
      const name = record.model ?? "(unknown model)";
      if (!unpricedModels.has(name)) {
        unpricedModels.add(name);
        emit({ type: "gatewayWarning", message: `no price for model ${name}: max-cost does not count its usage (max-tokens does)` });
      }
    }
    const spent = ledger.add(usage, cost);
    if (spent) emit(spent);
  };

  // An agent that gives up while the model is still thinking (no response headers yet) ends the upstream call.
  proxy.on("proxyReq", (proxyReq, _req, res) => {
    res.on("close", () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
  });

  proxy.on("proxyRes", (proxyRes, req, res) => {
    const request = forwarded.get(req);
    if (!request) return;
    // From here on the response's own end produces the usage record, whatever fails later.
    forwarded.delete(req);
    const status = proxyRes.statusCode ?? 502;
    const meter = meterFor(protocol, { contentType: proxyRes.headers["content-type"], path: request.path });
    // An agent that hangs up mid-stream should not keep the model generating (and billing) for nobody.
    res.on("close", () => {
      if (!proxyRes.complete) proxyRes.destroy();
    });
    // An upstream that dies mid-stream must not leave the agent waiting on a response that never ends.
    proxyRes.on("close", () => {
      if (!proxyRes.complete) res.destroy();
    });
    void teeIntoMeter(proxyRes, meter).then(() => {
      let result: ReturnType<UsageMeter["end"]>;
      try {
        result = meter.end();
      } catch {
        result = undefined;
      }
      const model = result?.model ?? request.requestModel ?? config.model;
      account(
        {
          type: "providerUsage",
          requestId: request.requestId,
          protocol,
          method: request.method,
          path: request.path,
          status,
          ...(model !== undefined ? { model } : {}),
          ...(result ? { usage: result.usage } : {}),
          latencyMs: Date.now() - request.startedAt,
          startedAt: request.startedAt,
        },
        result?.usage,
      );
    });
  });

  const upstreamFailed = (req: IncomingMessage, res: ServerResponse | Socket, message: string): void => {
    const request = forwarded.get(req);
    if (request) {
      forwarded.delete(req);
      emit({
        type: "providerUsage",
        requestId: request.requestId,
        protocol,
        method: request.method,
        path: request.path,
        status: 502,
        ...(request.requestModel ?? config.model ? { model: request.requestModel ?? config.model } : {}),
        latencyMs: Date.now() - request.startedAt,
        startedAt: request.startedAt,
      });
    }
    if (!("writeHead" in res) || res.headersSent) {
      res.destroy();
      return;
    }
    const reply = errorReply(protocol, request?.path ?? "/", 502, message);
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = Date.now();
    const requestId = randomUUID();
    const method = req.method ?? "GET";

    const parsed = parseRequestTarget(req.url ?? "");
    if (!parsed.ok) {
      refuse(res, requestId, method, "/", 403, "proxy-request", "this gateway forwards only to the run's model provider");
      return;
    }
    const { path, query } = parsed;
    if (!checkToken(presentedTokens(req.headers, query))) {
      refuse(res, requestId, method, path, 401, "token", "invalid or missing API key for the perstack gateway");
      return;
    }
    if (hasPathTraversal(path)) {
      refuse(res, requestId, method, path, 403, "traversal", "path refused by the perstack gateway");
      return;
    }
    if (!isApiRoute(protocol, method, path, config.vertex)) {
      refuse(res, requestId, method, path, 403, "path", `${method} ${path} is not a ${protocol} model API call`);
      return;
    }
    const spent = ledger.exceeded();
    if (spent) {
      refuse(res, requestId, method, path, 402, "budget", budgetMessage(spent));
      return;
    }

    const received = await readBody(req, maxRequestBytes);
    if (received === "aborted") return;
    if (received === "too-large") {
      res.setHeader("connection", "close");
      refuse(res, requestId, method, path, 413, "body-too-large", `request body over ${maxRequestBytes} bytes`);
      return;
    }
    // Before signing (SigV4 hashes the body) and before content-length: the body may grow.
    const body = asksForStreamUsage(protocol, method, path) ? withStreamUsage(received) : received;

    const url = upstreamUrl(config.upstream, path, query, config.upstreamQuery);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || DROPPED_REQUEST_HEADERS.has(name) || name.startsWith("x-forwarded-")) continue;
      headers[name] = Array.isArray(value) ? value.join(", ") : value;
    }
    headers.host = url.host;
    // The meter reads the response as it passes; a compressed one would have to be inflated first.
    headers["accept-encoding"] = "identity";
    if (body.length > 0 || !["GET", "HEAD", "DELETE"].includes(method)) headers["content-length"] = String(body.length);

    try {
      Object.assign(headers, await auth.headersFor({ method, url, headers, body }));
    } catch (err) {
      emit({ type: "gatewayWarning", message: `could not get the provider's credentials: ${err instanceof Error ? err.message : String(err)}` });
      const reply = errorReply(protocol, path, 502, "the perstack gateway could not get the provider's credentials");
      res.writeHead(reply.status, reply.headers);
      res.end(reply.body);
      return;
    }

    forwarded.set(req, {
      requestId,
      method,
      startedAt,
      path: url.pathname,
      requestModel: modelFromBody(body) ?? modelFromPath(protocol, path),
    });
    // http-proxy copies req.headers and req.url onto the upstream request: replace them with the vetted ones.
    for (const name of Object.keys(req.headers)) delete req.headers[name];
    Object.assign(req.headers, headers);
    req.url = `${url.pathname}${url.search}`;
    proxy.web(req, res, { target, agent, buffer: Readable.from(body.length > 0 ? [body] : []) }, (err, _req, errRes) => {
      const code = (err as NodeJS.ErrnoException).code;
      // The run's records say why, with the address (the agent's 502 only names the code).
      if (err instanceof PrivateUpstreamError) emit({ type: "gatewayWarning", message: `upstream refused: ${err.message}` });
      upstreamFailed(req, errRes, `the model provider could not be reached${code ? ` (${code})` : ""}`);
    });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "perstack gateway failure" } }));
      } else {
        res.destroy();
      }
    });
  });
  // Clients keep connections idle between model calls longer than Node's 5 s default; closing first races them.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  const refuseSocket = (req: IncomingMessage, socket: Duplex): void => {
    emit({ type: "gatewayRefused", requestId: randomUUID(), method: req.method ?? "CONNECT", status: 403, reason: "proxy-request" });
    socket.end("HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
  };
  server.on("connect", refuseSocket);
  server.on("upgrade", refuseSocket);

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off("error", reject);
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : config.listen.port;
      resolve({
        port,
        close: (graceMs = 2_000) =>
          new Promise<void>((done) => {
            const timer = setTimeout(() => server.closeAllConnections(), graceMs);
            server.close(() => {
              clearTimeout(timer);
              agent.destroy();
              proxy.close();
              done();
            });
            server.closeIdleConnections();
          }),
      });
    });
  });
}
