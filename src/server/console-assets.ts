// The web console's files at GET / and GET /assets/<name>, as scripts/build-console.mjs wrote them to dist/console.
// The set is fixed and read once, at registration: a URL only picks an entry of a map, so no part of one ever reaches
// the file system. The console needs no token to load (it holds no data); everything it shows comes from /v1 with
// the tenant's token, which it keeps in sessionStorage.
//
// The console shows what agents wrote, and agents may be prompt-injected, so its pages carry a CSP that runs only its
// own script and styles and talks only to its own origin. A comparison's report is framed from this origin (a signed
// /reports/ link, src/server/report-links.ts), where it is served with a policy of its own.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { packagePath } from "../package-root.js";

/** The console's assets by the name in /assets/<name>, and their types. Nothing else under assets/ is served. */
const ASSET_TYPES: Readonly<Record<string, string>> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

const NOT_BUILT = { error: { code: "not_found", message: "the console was not built; run npm run build" } };
const NO_SUCH_ASSET = { error: { code: "not_found", message: "no such console asset" } };

export interface ConsoleOptions {
  /** The built console (default: dist/console of this package). */
  dir?: string;
}

interface ConsoleFile {
  body: Buffer;
  type: string;
  etag: string;
}

export async function registerConsole(app: FastifyInstance, options: ConsoleOptions = {}): Promise<void> {
  // This file runs from src/ in tests and from dist/src/ once built: the package root is the same from both.
  const dir = options.dir ?? packagePath("dist", "console");
  const index = await readConsoleFile(join(dir, "index.html"), "text/html; charset=utf-8");
  const assets = new Map<string, ConsoleFile>();
  for (const [name, type] of Object.entries(ASSET_TYPES)) {
    const file = await readConsoleFile(join(dir, "assets", name), type);
    if (file) assets.set(name, file);
  }
  const headers = CONSOLE_HEADERS;

  const send = (request: FastifyRequest, reply: FastifyReply, file: ConsoleFile | undefined, missing: object) => {
    void reply.headers(headers);
    if (!file) return reply.code(404).type("application/json; charset=utf-8").header("cache-control", "no-store").send(missing);
    // Fixed names, not content-hashed ones: always revalidate, which the ETag makes a 304.
    void reply.header("cache-control", "no-cache").header("etag", file.etag);
    if (matchesEtag(request.headers["if-none-match"], file.etag)) return reply.code(304).send();
    return reply.type(file.type).send(file.body);
  };

  app.get("/", { schema: { hide: true } }, (request, reply) => send(request, reply, index, NOT_BUILT));
  app.get<{ Params: { name: string } }>("/assets/:name", { schema: { hide: true } }, (request, reply) =>
    index ? send(request, reply, assets.get(request.params.name), NO_SUCH_ASSET) : send(request, reply, undefined, NOT_BUILT),
  );
}

/** The headers of every console response. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

async function readConsoleFile(path: string, type: string): Promise<ConsoleFile | undefined> {
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch {
    return undefined;
  }
  return { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header === "*" || header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}
