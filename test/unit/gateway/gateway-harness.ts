// Shared setup of the gateway tests: the gateway in-process on a loopback port, fake upstreams (plain and TLS, with
// a throwaway CA made by openssl), and a recorder of what each upstream received. Only loopback addresses are used.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll } from "vitest";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.ts";
import { loadPriceTable } from "../../../src/gateway/pricing.ts";
import type { PriceTable } from "../../../src/gateway/pricing.ts";
import { startGateway } from "../../../src/gateway/server.ts";
import type { GatewayRecord, GatewayUsageRecord } from "../../../src/gateway/types.ts";
import type { UpstreamAuth } from "../../../src/gateway/upstream-auth.ts";
import { staticHeaderAuth } from "../../../src/gateway/upstream-auth.ts";

export const TOKEN = "run-token-0123456789abcdef0123456789abcdef";
export const REAL_KEY = "sk-real-provider-key-never-in-the-sandbox";

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export interface FakeUpstream {
  url: string;
  received: ReceivedRequest[];
  close(): Promise<void>;
}

type UpstreamHandler = (req: ReceivedRequest, res: ServerResponse) => void;

export const okJson: UpstreamHandler = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ ok: true }));
};

function listenOn(server: http.Server | https.Server, scheme: "http" | "https"): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve(`${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function closeServer(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A fake upstream that records each request (body read in full) and answers with `handler`. */
export async function startUpstream(handler: UpstreamHandler = okJson, tlsFiles?: { key: string; cert: string }): Promise<FakeUpstream> {
  const received: ReceivedRequest[] = [];
  const listener: RequestListener = (req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => {
      const request = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, body: Buffer.concat(parts) };
      received.push(request);
      handler(request, res);
    });
  };
  const server = tlsFiles
    ? https.createServer({ key: readFileSync(tlsFiles.key), cert: readFileSync(tlsFiles.cert) }, listener)
    : http.createServer(listener);
  const url = await listenOn(server, tlsFiles ? "https" : "http");
  return { url, received, close: () => closeServer(server) };
}

export interface TlsMaterial {
  dir: string;
  caCert: string;
  /** A server certificate for 127.0.0.1 signed by the CA. */
  serverKey: string;
  serverCert: string;
  /** A self-signed certificate for 127.0.0.1 that no one trusts. */
  rogueKey: string;
  rogueCert: string;
  cleanup(): void;
}

export async function makeTlsMaterial(): Promise<TlsMaterial> {
  const dir = mkdtempSync(join(tmpdir(), "gateway-tls-"));
  const at = (name: string): string => join(dir, name);
  const openssl = (args: string[]) => execa("openssl", args, { cwd: dir });
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=gateway test CA"]);
  await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
  writeFileSync(at("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  await openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext"]);
  await openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]);
  return {
    dir,
    caCert: at("ca.crt"),
    serverKey: at("server.key"),
    serverCert: at("server.crt"),
    rogueKey: at("rogue.key"),
    rogueCert: at("rogue.crt"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TestGateway {
  url: string;
  records: GatewayRecord[];
  usageRecords(): GatewayUsageRecord[];
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  auth?: UpstreamAuth;
  priceTable?: PriceTable;
}

let shippedTable: PriceTable | undefined;

/** Starts the gateway on 127.0.0.1:0; `config` is the JSON config (listen is filled in). */
export async function startTestGateway(config: Record<string, unknown>, options: TestGatewayOptions = {}): Promise<TestGateway> {
  const parsed = parseGatewayConfig({ listen: { host: "127.0.0.1", port: 0 }, ...config }, "test");
  const records: GatewayRecord[] = [];
  shippedTable ??= loadPriceTable();
  const gateway = await startGateway({
    config: parsed,
    token: TOKEN,
    auth: options.auth ?? staticHeaderAuth({ "x-api-key": REAL_KEY }),
    priceTable: options.priceTable ?? shippedTable,
    emit: (record) => records.push(record),
  });
  return {
    url: `http://127.0.0.1:${gateway.port}`,
    records,
    usageRecords: () => records.filter((r): r is GatewayUsageRecord => r.type === "providerUsage"),
    close: () => gateway.close(100),
  };
}

/** Waits until `check` holds (usage records are printed once a response has ended, just after the client sees it). */
export async function eventually(check: () => boolean, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** One raw HTTP request to the gateway, exactly as written (fetch would normalize the request target). */
export function rawRequest(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; headers: IncomingMessage["headers"]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", path: options.path, headers: options.headers ?? {} }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString("utf8") }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/**
 * For a describe block: one fake upstream and one gateway in front of it (config from the upstream's URL), both
 * stopped afterwards, with what they recorded cleared between tests. The fields are set once the hooks have run.
 */
export function gatewaySuite(configFor: (upstreamUrl: string) => Record<string, unknown>): { upstream: FakeUpstream; gateway: TestGateway } {
  const suite = {} as { upstream: FakeUpstream; gateway: TestGateway };
  beforeAll(async () => {
    suite.upstream = await startUpstream();
    suite.gateway = await startTestGateway(configFor(suite.upstream.url));
  });
  afterAll(async () => {
    await suite.gateway.close();
    await suite.upstream.close();
  });
  afterEach(() => {
    suite.upstream.received.length = 0;
    suite.gateway.records.length = 0;
  });
  return suite;
}
