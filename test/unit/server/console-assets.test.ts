// The web console's files (src/server/console-assets.ts) on a bare Fastify app: what is served and with which
// headers, that nothing outside the fixed set is (unknown names, traversal attempts, other files on disk), that
// the files are read once, and the answer when the console was never built.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_HEADERS, registerConsole } from "../../../src/server/console-assets.js";

const INDEX = '<!doctype html><html><head><link rel="icon" href="data:,"><script type="module" src="assets/app.js"></script></head><body><div id="app"></div></body></html>';
const APP_JS = "console.log('console');";
const APP_CSS = "body { margin: 0; }";

function builtConsole(): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-console-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), INDEX);
  writeFileSync(join(dir, "assets", "app.js"), APP_JS);
  writeFileSync(join(dir, "assets", "app.css"), APP_CSS);
  // On disk beside the served files, never served: only the fixed names are.
  writeFileSync(join(dir, "assets", "secret.txt"), "not for the web");
  writeFileSync(join(dir, "secret.json"), "{}");
  return dir;
}

async function app(dir: string): Promise<FastifyInstance> {
  const server = Fastify({ logger: false });
  await server.register(swagger, { openapi: { openapi: "3.1.0", info: { title: "test", version: "1" } } });
  await registerConsole(server, { dir });
  server.get("/v1/visible", () => ({ ok: true }));
  await server.ready();
  return server;
}

function expectConsoleHeaders(headers: Record<string, unknown>): void {
  const csp = String(headers["content-security-policy"]);
  for (const directive of ["default-src 'none'", "script-src 'self'", "img-src 'self' data:", "connect-src 'self'", "frame-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]) {
    expect(csp).toContain(directive);
  }
  expect(csp).toContain("style-src 'self';");
  expect(csp).not.toContain("unsafe-inline");
  expect(csp).not.toContain("unsafe-eval");
  expect(headers["x-content-type-options"]).toBe("nosniff");
  expect(headers["referrer-policy"]).toBe("no-referrer");
}

describe("the console's files", () => {
  const dir = builtConsole();
  let server: FastifyInstance;

  beforeAll(async () => {
    server = await app(dir);
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves index.html at / with the console's headers", async () => {
    const response = await server.inject({ method: "GET", url: "/" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(response.headers["cache-control"]).toBe("no-cache");
    expect(response.headers.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(response.body).toBe(INDEX);
    expectConsoleHeaders(response.headers);
  });

  it("serves app.js and app.css with their types", async () => {
    const js = await server.inject({ method: "GET", url: "/assets/app.js" });
    expect(js.statusCode).toBe(200);
    expect(js.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(js.body).toBe(APP_JS);
    expectConsoleHeaders(js.headers);
    const css = await server.inject({ method: "GET", url: "/assets/app.css" });
    expect(css.statusCode).toBe(200);
    expect(css.headers["content-type"]).toBe("text/css; charset=utf-8");
    expect(css.body).toBe(APP_CSS);
    expect(css.headers["cache-control"]).toBe("no-cache");
  });

  it("answers a request with the current ETag with 304 and no body", async () => {
    const first = await server.inject({ method: "GET", url: "/assets/app.js" });
    const again = await server.inject({ method: "GET", url: "/assets/app.js", headers: { "if-none-match": String(first.headers.etag) } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe("");
    expectConsoleHeaders(again.headers);
    const stale = await server.inject({ method: "GET", url: "/assets/app.js", headers: { "if-none-match": '"something-else"' } });
    expect(stale.statusCode).toBe(200);
  });

  it("answers HEAD like GET, without a body", async () => {
    const response = await server.inject({ method: "HEAD", url: "/" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(response.body).toBe("");
  });

  it("serves no other name, whatever is on disk", async () => {
    for (const name of ["secret.txt", "index.html", "app.js.map", "APP.JS", "app.js%00", "constructor", "__proto__", "hasOwnProperty"]) {
      const response = await server.inject({ method: "GET", url: `/assets/${name}` });
      expect(response.statusCode, name).toBe(404);
      expect(response.json(), name).toEqual({ error: { code: "not_found", message: "no such console asset" } });
      expect(response.body, name).not.toContain("not for the web");
      expectConsoleHeaders(response.headers);
    }
  });

  it("refuses traversal attempts", async () => {
    for (const url of [
      "/assets/../secret.json",
      "/assets/..%2fsecret.json",
      "/assets/..%2Fsecret.json",
      "/assets/%2e%2e%2fsecret.json",
      "/assets/..%5csecret.json",
      "/assets/....//secret.json",
      "/assets/%2e%2e/%2e%2e/package.json",
      "/assets/..%2f..%2f..%2fetc%2fpasswd",
      "/../package.json",
      "/%2e%2e/package.json",
      "/assets/assets%2fsecret.txt",
      "/assets//etc/passwd",
    ]) {
      const response = await server.inject({ method: "GET", url });
      expect(response.statusCode, url).toBe(404);
      expect(response.body, url).not.toContain("not for the web");
      expect(response.body, url).not.toContain('"name"');
    }
  });

  it("reads the files once, at registration", async () => {
    writeFileSync(join(dir, "assets", "app.js"), "changed on disk");
    const response = await server.inject({ method: "GET", url: "/assets/app.js" });
    expect(response.body).toBe(APP_JS);
  });

  it("keeps its routes out of /openapi.json", () => {
    const paths = Object.keys((server.swagger() as { paths?: Record<string, unknown> }).paths ?? {});
    expect(paths).toContain("/v1/visible");
    expect(paths.filter((path) => path === "/" || path.startsWith("/assets"))).toEqual([]);
  });
});

describe("a console that was not built", () => {
  const dir = join(tmpdir(), `perstack-console-missing-${process.pid}`);
  let server: FastifyInstance;

  beforeAll(async () => {
    server = await app(dir);
  });
  afterAll(async () => {
    await server.close();
  });

  it("answers / and its assets with 404 and says how to build it", async () => {
    for (const url of ["/", "/assets/app.js"]) {
      const response = await server.inject({ method: "GET", url });
      expect(response.statusCode, url).toBe(404);
      expect(response.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(response.json()).toEqual({ error: { code: "not_found", message: "the console was not built; run npm run build" } });
      expectConsoleHeaders(response.headers);
    }
  });
});

describe("the console's CSP and the comparison report", () => {
  it("runs only its own script and style, talks only to its origin, and frames only its origin (the report's signed link)", () => {
    expect(CONSOLE_HEADERS["content-security-policy"]).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
  });
});
