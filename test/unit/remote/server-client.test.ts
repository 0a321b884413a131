// The `--server` client against a small in-process HTTP server: the target's checks (http to a remote host, a URL
// with credentials, a missing token), the bearer token on every request and nowhere else, the API's errors mapped to
// the project's (4xx: exit 2 with the server's message; 5xx, 429: exit 1; unreachable: one line naming the server),
// redirects not followed, and answers checked before they are read.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, ServerFailedError, ServerRefusedError, ServerUnreachableError } from "../../../src/errors.js";
import { ServerClient } from "../../../src/remote/server-client.js";
import { serverTarget } from "../../../src/remote/server-target.js";

const TOKEN = "pst_team-a_secretsecretsecret";

describe("serverTarget", () => {
  it("is undefined without --server or PERSTACK_SERVER, and takes the token from PERSTACK_TOKEN", () => {
    expect(serverTarget({}, {})).toBeUndefined();
    expect(serverTarget({}, { PERSTACK_TOKEN: TOKEN })).toBeUndefined();
    expect(serverTarget({ server: "https://perstack.example.com/api/" }, { PERSTACK_TOKEN: TOKEN })).toEqual({ base: "https://perstack.example.com/api", token: TOKEN });
    expect(serverTarget({}, { PERSTACK_SERVER: "https://perstack.example.com", PERSTACK_TOKEN: TOKEN })).toEqual({ base: "https://perstack.example.com", token: TOKEN });
    expect(serverTarget({ server: "https://a.example", token: "pst_flag" }, { PERSTACK_TOKEN: TOKEN })?.token).toBe("pst_flag");
  });

  it("refuses plain http to another host unless --allow-http, but takes loopback", () => {
    const env = { PERSTACK_TOKEN: TOKEN };
    expect(() => serverTarget({ server: "http://perstack.example.com" }, env)).toThrow(InvalidOptionError);
    expect(() => serverTarget({ server: "http://perstack.example.com" }, env)).toThrow(/plain http would send your token and workspace unencrypted.*--allow-http/);
    expect(serverTarget({ server: "http://perstack.example.com", allowHttp: true }, env)?.base).toBe("http://perstack.example.com");
    for (const url of ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"]) expect(serverTarget({ server: url }, env)?.base).toBe(url);
  });

  it("refuses what is not a server URL, credentials in it, and a missing or malformed token, never echoing a token", () => {
    const env = { PERSTACK_TOKEN: TOKEN };
    expect(() => serverTarget({ server: "perstack.example.com" }, env)).toThrow(/not a URL/);
    expect(() => serverTarget({ server: "ftp://perstack.example.com" }, env)).toThrow(/https:\/\//);
    expect(() => serverTarget({ server: "https://user:pw@perstack.example.com" }, env)).toThrow(/credentials/);
    expect(() => serverTarget({ server: "https://user:pw@perstack.example.com" }, env)).not.toThrow(/pw/);
    expect(() => serverTarget({ server: "https://perstack.example.com?x=1" }, env)).toThrow(/query/);
    expect(() => serverTarget({ server: "https://perstack.example.com" }, {})).toThrow(/PERSTACK_TOKEN/);
    let message = "";
    try {
      serverTarget({ server: "https://perstack.example.com", token: "has a space secret" }, {});
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/--token: not an API token/);
    expect(message).not.toContain("secret");
    expect(() => serverTarget({ token: TOKEN }, {})).toThrow(/--token goes with --server/);
  });
});

type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void;

describe("ServerClient", () => {
  let server: Server;
  let url: string;
  let handler: Handler = () => {};
  const seen: Array<{ method: string; url: string; authorization: string | undefined; body: string }> = [];

  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ method: request.method ?? "", url: request.url ?? "", authorization: request.headers.authorization, body });
        handler(request, response, body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const client = () => new ServerClient({ base: url, token: TOKEN });
  const json = (response: ServerResponse, status: number, value: unknown) => {
    response.writeHead(status, { "content-type": "application/json" });
    response.end(JSON.stringify(value));
  };

  it("sends the bearer token and reads a checked answer", async () => {
    handler = (_request, response) => json(response, 200, { jobId: "job1", status: "completed", submittedAt: 1, expert: "writer", totalSteps: 2 });
    seen.length = 0;
    const view = await client().getRun("job1");
    expect(view).toMatchObject({ jobId: "job1", status: "completed", totalSteps: 2 });
    expect(seen[0]).toMatchObject({ method: "GET", url: "/v1/runs/job1", authorization: `Bearer ${TOKEN}` });
  });

  it("submits a run as a multipart form: fields, limits as JSON, the workspace as a file part", async () => {
    handler = (_request, response) => json(response, 202, { jobId: "job2", status: "queued", position: 1 });
    seen.length = 0;
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const file = join(mkdtempSync(join(tmpdir(), "perstack-client-")), "ws.tar.gz");
    writeFileSync(file, "ARCHIVE-BYTES");
    const submitted = await client().submitRun({ config: "model = 'a'", expert: "writer", query: "hi", runtime: "perstack", limits: { maxDurationMs: 60_000 } }, file);
    expect(submitted).toMatchObject({ jobId: "job2", position: 1 });
    const body = seen[0]!.body;
    expect(body).toMatch(/name="config"\r\n\r\nmodel = 'a'/);
    expect(body).toMatch(/name="limits"\r\n\r\n\{"maxDurationMs":60000\}/);
    expect(body).toMatch(/name="workspace"; filename="workspace.tar.gz"\r\nContent-Type: application\/gzip\r\n\r\nARCHIVE-BYTES/);
    expect(body).not.toContain("budgets");
  });

  it("maps the API's errors: 4xx is bad input with the server's message, 401 names the token, 429 and 5xx are failures", async () => {
    const cases: Array<[number, unknown, new (...args: never[]) => Error, RegExp]> = [
      [400, { error: { code: "bad_request", message: "perstack.toml: experts.writer.instruction: required" } }, ServerRefusedError, /refused GET \/v1\/runs\/x: perstack\.toml: experts\.writer\.instruction: required$/],
      [404, { error: { code: "not_found", message: "no run x" } }, ServerRefusedError, /no run x/],
      [401, { error: { code: "unauthorized", message: "the token is not valid" } }, ServerRefusedError, /refused the token: the token is not valid; check PERSTACK_TOKEN/],
      [429, { error: { code: "rate_limited", message: "more than 120 submissions in a minute" } }, ServerFailedError, /not taking more now: more than 120 submissions in a minute \(try again in 60 s\)/],
      [500, { error: { code: "internal", message: "internal error; see the server's log" } }, ServerFailedError, /failed GET \/v1\/runs\/x: internal error/],
      [502, "<html>Bad Gateway</html>", ServerFailedError, /failed GET \/v1\/runs\/x: HTTP 502/],
    ];
    for (const [status, body, type, message] of cases) {
      handler = (_request, response) => {
        if (status === 429) response.setHeader("retry-after", "60");
        if (typeof body === "string") {
          response.writeHead(status, { "content-type": "text/html" });
          response.end(body);
        } else json(response, status, body);
      };
      const error = await client().getRun("x").catch((caught: unknown) => caught);
      expect(error, String(status)).toBeInstanceOf(type);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toContain(url);
      expect((error as Error).message).not.toContain(TOKEN);
      expect((error as { exitCode: number }).exitCode).toBe(status < 500 && status !== 429 ? 2 : 1);
      if (error instanceof ServerRefusedError) expect(error.status).toBe(status);
    }
  });

  it("refuses an answer it cannot read, and never follows a redirect (the token stays with the named server)", async () => {
    handler = (_request, response) => json(response, 200, { jobId: "../../etc", status: "completed", submittedAt: 1 });
    await expect(client().getRun("x")).rejects.toThrow(/cannot read \(jobId: must be an id/);
    handler = (_request, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end("{not json");
    };
    await expect(client().getRun("x")).rejects.toThrow(/not JSON/);
    seen.length = 0;
    handler = (_request, response) => {
      response.writeHead(307, { location: "https://elsewhere.example/v1/runs/x" });
      response.end();
    };
    const error = await client().getRun("x").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServerFailedError);
    expect((error as Error).message).toMatch(/redirected GET \/v1\/runs\/x to https:\/\/elsewhere\.example\/v1\/runs\/x \(307\)/);
    expect(seen).toHaveLength(1);
  });

  it("names the server and the reason when it cannot be reached", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error = await new ServerClient({ base: `http://127.0.0.1:${port}`, token: TOKEN }).getRun("x").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServerUnreachableError);
    expect((error as Error).message).toBe(`cannot reach the server at http://127.0.0.1:${port}: connection refused (ECONNREFUSED); check --server (or PERSTACK_SERVER) and that perstack serve runs there`);
    const unknown = await new ServerClient({ base: "http://no-such-host.invalid", token: TOKEN }).getRun("x").catch((caught: unknown) => caught);
    expect((unknown as Error).message).toMatch(/^cannot reach the server at http:\/\/no-such-host\.invalid: no such host \((ENOTFOUND|EAI_AGAIN)\)/);
  });
});
