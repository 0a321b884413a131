// Issue 14: `perstack serve` for real, on the real engine, with tenants added by `perstack tenants` and runs of the
// built-in runtime and of Claude Code against the fake model server. Two tenants at once; events over SSE (a client
// dropped mid-run resumes with Last-Event-ID and sees every event once); workspace and diff downloads; one tenant
// cannot see or touch the other's runs (404, as for a run that does not exist); a server killed with SIGKILL while
// runs are queued and running loses none and runs none twice; /openapi.json is a valid OpenAPI 3.1 document and the
// responses the tests get validate against it.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { execa } from "execa";
import tar from "tar-stream";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, cliEnv } from "../support/cli.js";
import { serverCli, startServer as startTestServer, type TestServer } from "../support/perstack-server.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import { fakeModelSuite, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."worker"]
description = "Works in the workspace"
instruction = "Do as asked."
`;

type Sse = { id: string; event: string; data: Record<string, unknown> };

/** Reads SSE from `url` until the stream ends, `stopAfter` events came or `until` says so of one; returns what it got. */
async function readSse(url: string, token: string, options: { lastEventId?: string; stopAfter?: number; until?: (event: Sse) => boolean } = {}): Promise<Sse[]> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, ...(options.lastEventId ? { "last-event-id": options.lastEventId } : {}) }, signal: controller.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const events: Sse[] = [];
  let buffer = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(block.split("\n").filter((l) => !l.startsWith(":") && l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trimStart()]));
        if (fields.data === undefined) continue;
        // The run is over: the server says so before it closes the stream.
        if (fields.event === "end") return events;
        events.push({ id: fields.id ?? "", event: fields.event ?? "message", data: JSON.parse(fields.data) as Record<string, unknown> });
        if ((options.stopAfter !== undefined && events.length >= options.stopAfter) || options.until?.(events.at(-1)!)) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  }
  return events;
}

function tarBuffer(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  return new Promise<Buffer>((resolve) => {
    pack.on("data", (c: unknown) => chunks.push(c as Buffer));
    pack.on("end", () => resolve(Buffer.concat(chunks)));
  });
}

async function tarGzBase64(files: Record<string, string>): Promise<string> {
  return gzipSync(await tarBuffer(files)).toString("base64");
}

async function untarGz(data: Buffer): Promise<Record<string, string>> {
  const extract = tar.extract();
  const files: Record<string, string> = {};
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        if (header.type === "file") files[header.name] = Buffer.concat(chunks).toString();
        next();
      });
    });
    extract.on("finish", () => resolve());
    extract.on("error", reject);
  });
  extract.end(gunzipSync(data));
  await done;
  return files;
}

describe.skipIf(!docker)("perstack serve", () => {
  const suite = fakeModelSuite(docker!, "perstack-serve-");
  const data = mkdtempSync(join(tmpdir(), "perstack-serve-data-"));
  const cwd = mkdtempSync(join(tmpdir(), "perstack-serve-cwd-"));
  let server: TestServer;
  const tokens: Record<string, string> = {};
  let openapi: Record<string, unknown>;
  const ajv = new Ajv2020({ strict: false });

  const cli = (args: string[], input?: string) => serverCli(dirs, args, input);

  const dirs = { data, cwd };
  const fakeHost = () => new URL(suite.fake.sandboxUrl).host;
  // The fake model server is on the Docker host (a private address): the operator allows it, as tests must.
  const startServer = () => startTestServer(dirs, { allowUpstream: fakeHost() });

  /** Every JSON answer of the API, whatever the test, is checked against /openapi.json before the test sees it. */
  const api = async (path: string, token: string, init: RequestInit = {}) => {
    const response = await fetch(`${server.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(typeof init.body === "string" ? { "content-type": "application/json" } : {}), ...(init.headers ?? {}) } });
    await conformsToDoc((init.method ?? "GET").toLowerCase(), path, response.clone());
    return response;
  };

  /** The route of the document a concrete path belongs to, e.g. /v1/runs/{jobId} for /v1/runs/mx1…. */
  function routeOf(path: string): string {
    const bare = path.split("?")[0]!;
    const routes = Object.keys(openapi.paths as object);
    const match = routes.find((route) => new RegExp(`^${route.replace(/\{[^}]+\}/g, "[^/]+")}$`).test(bare));
    if (!match) throw new Error(`${bare} is no route of /openapi.json`);
    return match;
  }

  async function conformsToDoc(method: string, path: string, response: Response): Promise<void> {
    if (!(response.headers.get("content-type") ?? "").startsWith("application/json")) return;
    const route = routeOf(path);
    const paths = openapi.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>>;
    const responses = paths[route]![method]!.responses;
    const spec = responses[String(response.status)] ?? responses[`${String(response.status)[0]}XX`];
    const schema = spec?.content?.["application/json"]?.schema;
    if (!schema) throw new Error(`${method} ${route} answered ${response.status} with JSON /openapi.json does not describe`);
    const validate = ajv.compile(schema);
    const body: unknown = await response.json();
    if (!validate(body)) throw new Error(`${method} ${path} ${response.status}: ${JSON.stringify(validate.errors)} for ${JSON.stringify(body).slice(0, 300)}`);
  }

  /** The JSON body of an answer `api` has checked against /openapi.json already. */
  async function checked(response: Response, _route: string, _method: string): Promise<Record<string, unknown>> {
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    return (await response.json()) as Record<string, unknown>;
  }

  async function submit(tenant: string, body: Record<string, unknown>): Promise<string> {
    const response = await api("/v1/runs", tokens[tenant]!, { method: "POST", body: JSON.stringify(body) });
    const submitted = await checked(response, "/v1/runs", "post");
    expect(response.status, JSON.stringify(submitted)).toBe(202);
    return submitted.jobId as string;
  }

  async function untilFinished(tenant: string, jobId: string, boundMs = 120_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + boundMs;
    for (;;) {
      const view = await checked(await api(`/v1/runs/${jobId}`, tokens[tenant]!), "/v1/runs/{jobId}", "get");
      if (!["queued", "running"].includes(view.status as string)) return view;
      if (Date.now() > deadline) throw new Error(`run ${jobId} still ${String(view.status)} after ${boundMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }

  beforeAll(async () => {
    for (const tenant of ["alpha", "beta"]) {
      const added = await cli(["tenants", "add", tenant, "--json"]);
      expect(added.exitCode, added.all).toBe(0);
      tokens[tenant] = (JSON.parse(added.stdout) as { token: string }).token;
      const secret = await cli(["tenants", "secret", "set", tenant, "ANTHROPIC_API_KEY"], `sk-fake-${tenant}\n`);
      expect(secret.exitCode, secret.all).toBe(0);
    }
    server = await startServer();
    openapi = (await (await fetch(`${server.url}/openapi.json`)).json()) as Record<string, unknown>;
  }, 120_000);

  afterAll(async () => {
    if (server?.log()) console.log(`perstack serve said:\n${server.log()}`);
    await server?.stop();
    rmSync(data, { recursive: true, force: true });
    rmSync(cwd, { recursive: true, force: true });
  });

  it("/openapi.json is a valid OpenAPI 3.1 document; /healthz answers without a token, /v1 not without one", async () => {
    const validator = new Validator();
    const result = await validator.validate(openapi);
    expect(result.valid, JSON.stringify(result.errors)).toBe(true);
    expect(validator.version).toBe("3.1");
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const anonymous = await fetch(`${server.url}/v1/runs`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe("Bearer");
    const wrong = await fetch(`${server.url}/v1/runs`, { headers: { authorization: `Bearer ${tokens.alpha}x` } });
    expect(wrong.status).toBe(401);
    expect(await checked(await api("/v1/session", tokens.alpha!), "/v1/session", "get")).toEqual({ tenant: "alpha", mode: "server", readOnly: false });
    // The console loads without a token (it holds no data) and runs nothing but its own script.
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
  });

  it("a second perstack serve on the same --data is refused (exit 2, naming the first); the first serves on", async () => {
    const second = await cli(["serve", "--port", "0"]);
    expect(second.exitCode, second.all).toBe(2);
    expect(second.all).toMatch(new RegExp(`--data \\S+: in use by another perstack serve \\(perstack process ${server.child.pid} on `));
    expect(second.all).not.toMatch(/listening on/);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it("a tenant's baseUrl on a metadata or loopback address, or an env file outside its upload, is a 400 naming the key; nothing is queued", async () => {
    const jobIds = async () => ((await checked(await api("/v1/runs?limit=200", tokens.alpha!), "/v1/runs", "get")).runs as Array<{ jobId: string }>).map((r) => r.jobId);
    const before = await jobIds();
    for (const [baseUrl, why] of [
      ["http://169.254.169.254/", /169\.254\.169\.254 is a cloud metadata address/],
      ["https://127.0.0.1:9/", /127\.0\.0\.1 is a loopback address/],
    ] as const) {
      const config = perstackToml({ baseUrl, top: "maxRetries = 0", experts: EXPERTS });
      const response = await api("/v1/runs", tokens.alpha!, { method: "POST", body: JSON.stringify({ config, expert: "worker", query: "reach inside" }) });
      const body = await checked(response, "/v1/runs", "post");
      expect(response.status, JSON.stringify(body)).toBe(400);
      const message = (body.error as { message: string }).message;
      // The value named is the upstream the gateway would call: the baseUrl less its API root and trailing slash.
      expect(message).toContain(`provider.setting.baseUrl "${baseUrl.replace(/\/$/, "")}"`);
      expect(message).toMatch(why);
      expect(message).toContain("--allow-private-upstream");
    }
    // Nor may its env files be anything but its own upload's: not the server's files, not another tenant's.
    for (const envPath of ["/etc/environment", "../../../beta/inputs/x/workspace/.env"]) {
      const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: `maxRetries = 0\nenvPath = ["${envPath}"]`, experts: EXPERTS });
      const response = await api("/v1/runs", tokens.alpha!, { method: "POST", body: JSON.stringify({ config, expert: "worker", query: "read theirs" }) });
      const body = (await response.json()) as { error: { message: string } };
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(body.error.message).toContain(`envPath "${envPath}": a tenant's env files must be inside its upload`);
    }
    expect(await jobIds()).toEqual(before);
  });

  it("two tenants' runs, built-in and Claude Code, complete side by side; events stream; workspace and diff download", async () => {
    await suite.fake.script([
      { forQuery: "alpha work", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", "echo made by alpha > made.txt && echo changed by alpha > readme.txt"], timeout: 60000 } }] },
      { forQuery: "alpha work", text: "alpha done" },
      { forQuery: "beta work", toolUse: [{ name: "Write", input: { file_path: "/workspace/more-notes.txt", content: "written by beta\n" } }] },
      { forQuery: "beta work", text: "beta done" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const [a, b] = await Promise.all([
      submit("alpha", { config, expert: "worker", query: "alpha work", workspace: await tarGzBase64({ "readme.txt": "alpha's files\n" }) }),
      submit("beta", { config, expert: "worker", query: "beta work", runtime: "claude-code", workspace: await tarGzBase64({ "notes.txt": "beta's notes\n" }) }),
    ]);
    const [streamA, streamB] = await Promise.all([readSse(`${server.url}/v1/runs/${a}/events`, tokens.alpha!), readSse(`${server.url}/v1/runs/${b}/events`, tokens.beta!)]);
    for (const stream of [streamA, streamB]) {
      expect(stream.map((e) => e.event)).toContain("startRun");
      expect(stream.at(-1)?.event === "completeRun" || stream.some((e) => e.event === "completeRun")).toBe(true);
      expect(new Set(stream.map((e) => e.id)).size).toBe(stream.length);
    }
    expect((await untilFinished("alpha", a)).status).toBe("completed");
    expect((await untilFinished("beta", b)).status).toBe("completed");

    const workspace = await api(`/v1/runs/${a}/workspace`, tokens.alpha!);
    expect(workspace.status).toBe(200);
    const files = await untarGz(Buffer.from(await workspace.arrayBuffer()));
    expect(files["made.txt"]).toBe("made by alpha\n");
    expect(files["readme.txt"]).toBe("changed by alpha\n");
    const diffA = await (await api(`/v1/runs/${a}/diff`, tokens.alpha!)).text();
    expect(diffA).toContain("--- a/readme.txt\n+++ b/readme.txt");
    expect(diffA).toContain("-alpha's files\n+changed by alpha");
    expect(diffA).toContain("--- /dev/null\n+++ b/made.txt");
    const diffB = await (await api(`/v1/runs/${b}/diff`, tokens.beta!)).text();
    expect(diffB).toContain("--- /dev/null\n+++ b/more-notes.txt");
    expect(diffB).toContain("+written by beta");
    expect(diffB).not.toContain("notes.txt\n+++ b/notes.txt");

    const listed = await checked(await api("/v1/runs?limit=10", tokens.alpha!), "/v1/runs", "get");
    expect((listed.runs as Array<{ jobId: string }>).map((r) => r.jobId)).toContain(a);
    expect((listed.runs as Array<{ jobId: string }>).map((r) => r.jobId)).not.toContain(b);
    const checkpoints = (await (await api(`/v1/runs/${a}/checkpoints`, tokens.alpha!)).json()) as { checkpoints: Array<{ id: string }> };
    expect(checkpoints.checkpoints.length).toBeGreaterThan(0);
    const one = await api(`/v1/runs/${a}/checkpoints/${checkpoints.checkpoints[0]!.id}`, tokens.alpha!);
    expect(one.status).toBe(200);
    expect(await leftAfterTeardown(docker!, a)).toEqual([]);
    expect(await leftAfterTeardown(docker!, b)).toEqual([]);

    // Tenant beta cannot read, stream, cancel or download alpha's run: the answer is that of a run that is not there.
    for (const [path, method] of [[`/v1/runs/${a}`, "GET"], [`/v1/runs/${a}/events`, "GET"], [`/v1/runs/${a}/cancel`, "POST"], [`/v1/runs/${a}/workspace`, "GET"], [`/v1/runs/${a}/diff`, "GET"], [`/v1/runs/${a}/checkpoints`, "GET"]] as const) {
      const theirs = await api(path, tokens.beta!, { method });
      const missing = await api(path.replace(a, "nosuchjob0"), tokens.beta!, { method });
      expect(theirs.status, path).toBe(404);
      expect(missing.status, path).toBe(404);
      expect((await theirs.json()) as unknown).toEqual(JSON.parse(JSON.stringify((await missing.json()) as unknown).replaceAll("nosuchjob0", a)));
    }
    // No response holds a secret.
    expect(JSON.stringify(listed)).not.toContain("sk-fake");
  }, 900_000);

  it("a finished job continues with a new query (a second run of the same job); a job still going cannot (409)", async () => {
    await suite.fake.script([
      { forQuery: "continue first", text: "first answer" },
      { forQuery: "continue first", text: "second answer" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const jobId = await submit("alpha", { config, expert: "worker", query: "continue first" });
    const busy = await api(`/v1/runs/${jobId}/continue`, tokens.alpha!, { method: "POST", body: JSON.stringify({ query: "too early" }) });
    expect([409, 202]).toContain(busy.status);
    expect((await untilFinished("alpha", jobId)).status).toBe("completed");
    if (busy.status === 202) await untilFinished("alpha", jobId);
    const again = await api(`/v1/runs/${jobId}/continue`, tokens.alpha!, { method: "POST", body: JSON.stringify({ query: "and now more" }) });
    const queued = await checked(again, "/v1/runs/{jobId}/continue", "post");
    expect(again.status, JSON.stringify(queued)).toBe(202);
    expect(queued.jobId).toBe(jobId);
    expect((await untilFinished("alpha", jobId)).status).toBe("completed");
    const events = await readSse(`${server.url}/v1/runs/${jobId}/events`, tokens.alpha!);
    expect(events.filter((e) => e.event === "startRun").length).toBeGreaterThanOrEqual(2);
    const both = await api(`/v1/runs/${jobId}/continue`, tokens.alpha!, { method: "POST", body: JSON.stringify({ query: "x", interactiveAnswer: "y" }) });
    expect(both.status).toBe(400);
    // Another tenant cannot continue it.
    expect((await api(`/v1/runs/${jobId}/continue`, tokens.beta!, { method: "POST", body: JSON.stringify({ query: "mine now" }) })).status).toBe(404);
  }, 180_000);

  it("an Idempotency-Key: sent again, a submission gets the run it made; cancelled by its key, the run stops or never runs", async () => {
    await suite.fake.script([{ forQuery: "keyed", text: "keyed answer" }]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const body = JSON.stringify({ config, expert: "worker", query: "keyed" });
    const post = (key: string, tenant = "alpha") => api("/v1/runs", tokens[tenant]!, { method: "POST", body, headers: { "idempotency-key": key } });
    const key = randomBytes(16).toString("hex");
    const first = await checked(await post(key), "/v1/runs", "post");
    const again = await post(key);
    const replayed = await checked(again, "/v1/runs", "post");
    expect(again.status).toBe(202);
    expect(replayed.jobId).toBe(first.jobId);
    // Keys are the tenant's own: another tenant's same key is another submission.
    const beta = await checked(await post(key, "beta"), "/v1/runs", "post");
    expect(beta.jobId).not.toBe(first.jobId);
    expect((await untilFinished("alpha", first.jobId as string)).status).toBe("completed");
    await untilFinished("beta", beta.jobId as string);
    const listed = await checked(await api("/v1/runs?limit=200", tokens.alpha!), "/v1/runs", "get");
    expect((listed.runs as Array<{ jobId: string }>).filter((run) => run.jobId === first.jobId)).toHaveLength(1);

    // Cancelled before it arrived (the client gave up on an upload the server had not seen yet): refused when it comes.
    const early = randomBytes(16).toString("hex");
    const tombstone = await api(`/v1/submissions/${early}/cancel`, tokens.alpha!, { method: "POST" });
    expect(await checked(tombstone, "/v1/submissions/{key}/cancel", "post")).toEqual({ status: "cancelled" });
    const refused = await post(early);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "cancelled", message: expect.stringContaining(early) });

    // Cancelled once it made a run: that run is cancelled like any.
    const late = randomBytes(16).toString("hex");
    const made = await checked(await post(late), "/v1/runs", "post");
    const cancelled = await checked(await api(`/v1/submissions/${late}/cancel`, tokens.alpha!, { method: "POST" }), "/v1/submissions/{key}/cancel", "post");
    expect(cancelled.jobId).toBe(made.jobId);
    expect(["cancelled", "stopping", "ended"]).toContain(cancelled.status);
    expect(["cancelled", "stoppedByError", "completed"]).toContain((await untilFinished("alpha", made.jobId as string)).status);

    const bad = await post("short");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/Idempotency-Key must be 16 to 128/);
  }, 240_000);

  it("a tenant's agent finds no provider key in its sandbox, its own or another tenant's (the gateway holds them)", async () => {
    const probe = "env; for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f; done 2>/dev/null; grep -rsl sk-fake /etc /home /tmp /workspace /opt /root /run /usr/local 2>/dev/null | head -5; echo probe-done";
    await suite.fake.script([
      { forQuery: "key probe", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", probe], timeout: 60000 } }] },
      { forQuery: "key probe", text: "probed" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const jobId = await submit("alpha", { config, expert: "worker", query: "key probe" });
    expect((await untilFinished("alpha", jobId)).status).toBe("completed");
    const runs = join(data, "tenants", "alpha", "perstack", "jobs", jobId, "runs");
    const recorded = readdirSync(runs).map((run) => readFileSync(join(runs, run, "events.jsonl"), "utf8") + readFileSync(join(runs, run, "raw.log"), "utf8")).join("");
    expect(recorded).toContain("probe-done");
    expect(recorded).not.toContain("sk-fake-alpha");
    expect(recorded).not.toContain("sk-fake-beta");
    // Nor does any response of the API.
    const everything = await Promise.all([`/v1/runs/${jobId}`, "/v1/runs", `/v1/runs/${jobId}/checkpoints`].map(async (path) => (await api(path, tokens.alpha!)).text()));
    expect(everything.join("")).not.toMatch(/sk-fake/);
  }, 180_000);

  it("a tenant's daily budget: a run gets what is left of it and is stopped there; once spent, queued runs are refused with the reason", async () => {
    const added = await cli(["tenants", "add", "gamma", "--max-cost-per-day", "0.000001", "--json"]);
    expect(added.exitCode, added.all).toBe(0);
    tokens.gamma = (JSON.parse(added.stdout) as { token: string }).token;
    expect((await cli(["tenants", "secret", "set", "gamma", "ANTHROPIC_API_KEY"], "sk-fake-gamma\n")).exitCode).toBe(0);
    await suite.fake.script([
      { forQuery: "spend", toolUse: [{ name: "exec", input: { command: "echo", args: ["one"], timeout: 60000 } }] },
      { forQuery: "spend", text: "never reached" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const first = await submit("gamma", { config, expert: "worker", query: "spend" });
    const stopped = await untilFinished("gamma", first);
    expect(stopped.status).toBe("stoppedByError");
    expect(stopped.allocatedUsd).toBeCloseTo(0.000001, 9);
    const events = await readSse(`${server.url}/v1/runs/${first}/events`, tokens.gamma!);
    expect(JSON.stringify(events.find((e) => e.event === "stopRunByError")?.data)).toContain("BudgetExceeded");
    const second = await submit("gamma", { config, expert: "worker", query: "spend" });
    const refused = await untilFinished("gamma", second);
    expect(refused.status).toBe("cancelled");
    expect(refused.reason).toMatch(/daily budget of \$0\.000001 is spent/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/perstack_tenant_spend_usd_today\{tenant="gamma"\} [0-9.e-]+/);
    expect(metrics).toMatch(/perstack_run_duration_seconds_count \d+/);
  }, 180_000);

  it("takes the submission as a multipart form too (curl -F), the workspace as a file part", async () => {
    await suite.fake.script([{ forQuery: "form work", text: "form done" }]);
    const form = new FormData();
    form.append("config", perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    form.append("expert", "worker");
    form.append("query", "form work");
    form.append("limits", JSON.stringify({ maxDurationMs: 600_000 }));
    form.append("workspace", new Blob([gzipSync(await tarBuffer({ "from-form.txt": "sent as a file part\n" }))]), "ws.tar.gz");
    const response = await api("/v1/runs", tokens.alpha!, { method: "POST", body: form });
    const body = await checked(response, "/v1/runs", "post");
    expect(response.status, JSON.stringify(body)).toBe(202);
    const jobId = body.jobId as string;
    expect((await untilFinished("alpha", jobId)).status).toBe("completed");
    const files = await untarGz(Buffer.from(await (await api(`/v1/runs/${jobId}/workspace`, tokens.alpha!)).arrayBuffer()));
    expect(files["from-form.txt"]).toBe("sent as a file part\n");
    // A form is checked like a JSON body: a missing field and bad JSON in limits are 400s that name them.
    const missing = new FormData();
    missing.append("config", "x");
    missing.append("expert", "worker");
    const noQuery = await api("/v1/runs", tokens.alpha!, { method: "POST", body: missing });
    expect(noQuery.status).toBe(400);
    expect(((await noQuery.json()) as { error: { message: string } }).error.message).toBe("body.query is required");
    const badLimits = new FormData();
    for (const [k, v] of [["config", "x"], ["expert", "worker"], ["query", "q"], ["limits", "{not json"]]) badLimits.append(k!, v!);
    const bad = await api("/v1/runs", tokens.alpha!, { method: "POST", body: badLimits });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/^body\.limits must be JSON/);
  }, 120_000);

  it("bad input gets a clear 4xx naming what is wrong, and every call leaves an audit line without its body", async () => {
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const cases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ config, expert: "worker", query: "q".repeat(300 * 1024) }, 413, /query is larger than 262144 bytes/],
      [{ config, expert: "worker", query: "q", workspace: "not base64 at all!" }, 400, /workspace must be a base64 tar\.gz/],
      [{ config, expert: "worker", query: "q", workspace: Buffer.from("plain text, not gzip").toString("base64") }, 400, /workspace upload refused/],
      [{ config, expert: "nobody", query: "q" }, 400, /nobody/],
      [{ config, expert: "worker", query: "q", budgets: { maxCostUsd: -1 } }, 400, /^body\.budgets\.maxCostUsd must be more than 0$/],
      [{ config, expert: "worker", query: "q", colour: "blue" }, 400, /^body\.colour is not a field of this request/],
      [{ config: "this is = not [toml", expert: "worker", query: "q" }, 400, /perstack\.toml/],
    ];
    for (const [body, status, message] of cases) {
      const response = await api("/v1/runs", tokens.alpha!, { method: "POST", body: JSON.stringify(body) });
      const answer = (await response.json()) as { error: { message: string } };
      expect(response.status, JSON.stringify(answer)).toBe(status);
      expect(answer.error.message).toMatch(message);
      expect(answer.error.message).not.toMatch(/must NOT|ajv|FST_|ZodError|at Object\./);
    }
    expect((await fetch(`${server.url}/v1/runs`)).status).toBe(401);
    // The line is written once the answer has gone out: it may come a moment after the client has it.
    let audit: string[] = [];
    for (let tries = 0; tries < 40 && !audit.some((line) => / tenant=- GET \/v1\/runs 401$/.test(line)); tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      audit = readFileSync(join(data, "audit.log"), "utf8").trim().split("\n");
    }
    expect(audit.some((line) => / tenant=alpha POST \/v1\/runs 413$/.test(line))).toBe(true);
    expect(audit.some((line) => / tenant=- GET \/v1\/runs 401$/.test(line))).toBe(true);
    expect(audit.join("\n")).not.toContain("qqqq");
    expect(audit.join("\n")).not.toContain("[provider]");
  }, 60_000);

  it("serves HTTPS with --tls-cert and --tls-key; a tenant past --max-submissions-per-minute gets 429, a body over 64 MiB 413", async () => {
    const dir = mkdtempSync(join(tmpdir(), "perstack-serve-tls-"));
    const own = join(dir, "data");
    const made = await execa("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { reject: false });
    expect(made.exitCode, made.stderr).toBe(0);
    const tenantCli = (args: string[], input?: string) => execa(process.execPath, [CLI, "tenants", ...args, "--data", own], { cwd, env: cliEnv(), extendEnv: false, reject: false, all: true, ...(input !== undefined ? { input } : {}) });
    const added = await tenantCli(["add", "solo", "--json"]);
    expect(added.exitCode, added.all).toBe(0);
    const token = (JSON.parse(added.stdout) as { token: string }).token;
    expect((await tenantCli(["secret", "set", "solo", "ANTHROPIC_API_KEY"], "sk-fake-solo\n")).exitCode).toBe(0);
    const fakeHost = new URL(suite.fake.sandboxUrl).host;
    const child = execa(
      process.execPath,
      [CLI, "serve", "--data", own, "--port", "0", "--tls-cert", join(dir, "cert.pem"), "--tls-key", join(dir, "key.pem"), "--max-submissions-per-minute", "2", "--max-concurrent", "1", "--allow-private-upstream", fakeHost],
      { cwd, env: cliEnv(), extendEnv: false, reject: false, all: true },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout!.on("data", (chunk: Buffer) => {
          const match = /listening on (https:\/\/[^\s]+)/.exec(chunk.toString());
          if (match) resolve(match[1]!);
        });
        void child.then((result) => reject(new Error(`serve ended: ${result.all}`)));
      });
      const { request } = await import("node:https");
      const ca = readFileSync(join(dir, "cert.pem"));
      const call = (path: string, method = "GET", body?: string) =>
        new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
          const req = request(`${url}${path}`, { method, ca, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json", "content-length": Buffer.byteLength(body) } : {}) } }, (response) => {
            let text = "";
            response.on("data", (chunk: Buffer) => (text += chunk.toString()));
            response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
          });
          req.on("error", reject);
          req.end(body);
        });
      expect(JSON.parse((await call("/healthz")).text)).toMatchObject({ ok: true });
      await suite.fake.script([{ forQuery: "rate", text: "rated" }]);
      const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
      const submit = () => call("/v1/runs", "POST", JSON.stringify({ config, expert: "worker", query: "rate" }));
      const accepted = [await submit(), await submit()];
      expect(accepted.map((r) => r.status)).toEqual([202, 202]);
      const third = await submit();
      expect(third.status).toBe(429);
      expect(third.headers["retry-after"]).toBe("60");
      expect(JSON.parse(third.text)).toEqual({ error: { code: "rate_limited", message: "more than 2 submissions in a minute; wait, then submit again" } });
      // A body said to be over the limit is answered before it is read (so the client is not made to send it all).
      const huge = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = request(`${url}/v1/runs`, { method: "POST", ca, headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": String(65 * 1024 * 1024) } }, (response) => {
          let text = "";
          response.on("data", (chunk: Buffer) => (text += chunk.toString()));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, text }));
        });
        req.on("error", reject);
        req.write(`{"config": "${"x".repeat(1024)}`);
      });
      expect(huge.status).toBe(413);
      expect(JSON.parse(huge.text).error.message).toMatch(/larger than 67108864 bytes/);
      // The two accepted runs end before the server does: nothing of them is left on the engine.
      for (const { text } of accepted) {
        const jobId = (JSON.parse(text) as { jobId: string }).jobId;
        const deadline = Date.now() + 60_000;
        while (["queued", "running"].includes((JSON.parse((await call(`/v1/runs/${jobId}`)).text) as { status: string }).status) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        expect(await leftAfterTeardown(docker!, jobId)).toEqual([]);
      }
    } finally {
      child.kill("SIGKILL");
      await child;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("a comparison runs one expert on two runtimes and serves compare's report once both have ended", async () => {
    await suite.fake.script([{ forQuery: "compare me", text: "compared answer" }]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const created = await api("/v1/comparisons", tokens.alpha!, { method: "POST", body: JSON.stringify({ config, expert: "worker", query: "compare me", runtimes: ["perstack", "claude-code"], workspace: await tarGzBase64({ "a.txt": "a\n" }) }) });
    const body = await checked(created, "/v1/comparisons", "post");
    expect(created.status, JSON.stringify(body)).toBe(202);
    const id = body.id as string;
    const deadline = Date.now() + 120_000;
    let view: Record<string, unknown>;
    do {
      view = await checked(await api(`/v1/comparisons/${id}`, tokens.alpha!), "/v1/comparisons/{id}", "get");
      if (view.status === "done") break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    } while (Date.now() < deadline);
    expect(view.status).toBe("done");
    expect((view.runs as Array<{ status: string }>).map((r) => r.status)).toEqual(["completed", "completed"]);
    expect((view.comparison as { runtimes: string[] }).runtimes.sort()).toEqual(["claude-code", "perstack"]);
    const report = await api(`/v1/comparisons/${id}/report`, tokens.alpha!);
    expect(report.status).toBe(200);
    expect(report.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await report.text()).toContain("claude-code");
    expect((await api(`/v1/comparisons/${id}`, tokens.beta!)).status).toBe(404);
    // Listed for its tenant only; a frame's signed link opens this report without the token, and no other.
    const list = await checked(await api("/v1/comparisons", tokens.alpha!), "/v1/comparisons", "get");
    expect((list.comparisons as Array<{ id: string }>).map((c) => c.id)).toContain(id);
    const theirs = await checked(await api("/v1/comparisons", tokens.beta!), "/v1/comparisons", "get");
    expect((theirs.comparisons as Array<{ id: string }>).map((c) => c.id)).not.toContain(id);
    const link = await checked(await api(`/v1/comparisons/${id}/report-link`, tokens.alpha!), "/v1/comparisons/{id}/report-link", "get");
    const framed = await fetch(`${server.url}${link.url as string}`);
    expect(framed.status).toBe(200);
    expect(framed.headers.get("content-security-policy")).toContain("frame-ancestors 'self'");
    expect(await framed.text()).toContain("claude-code");
    expect((await fetch(`${server.url}${(link.url as string).replace("/alpha/", "/beta/")}`)).status).toBe(403);
    expect((await api(`/v1/comparisons/${id}/report-link`, tokens.beta!)).status).toBe(404);
  }, 240_000);

  it("an SSE client dropped mid-run resumes with Last-Event-ID and sees every event exactly once", async () => {
    await suite.fake.script([
      { forQuery: "resume work", toolUse: [{ name: "exec", input: { command: "sleep", args: ["2"], timeout: 60000 } }] },
      { forQuery: "resume work", toolUse: [{ name: "exec", input: { command: "echo", args: ["again"], timeout: 60000 } }] },
      { forQuery: "resume work", text: "resumed done" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const jobId = await submit("alpha", { config, expert: "worker", query: "resume work" });
    const first = await readSse(`${server.url}/v1/runs/${jobId}/events`, tokens.alpha!, { stopAfter: 3 });
    expect(first).toHaveLength(3);
    const rest = await readSse(`${server.url}/v1/runs/${jobId}/events`, tokens.alpha!, { lastEventId: first.at(-1)!.id });
    const whole = await readSse(`${server.url}/v1/runs/${jobId}/events`, tokens.alpha!);
    const ids = (events: Sse[]) => events.map((e) => e.data.id);
    expect([...ids(first), ...ids(rest)]).toEqual(ids(whole));
    expect(whole.some((e) => e.event === "completeRun")).toBe(true);
    for (const hostile of ["not a cursor", "v1:../../x.3", `v1:${"a".repeat(20_000)}.1`, "v1:someoneelsesrun.5"]) {
      const bad = await api(`/v1/runs/${jobId}/events`, tokens.alpha!, { headers: { "last-event-id": hostile } });
      expect([400, 431], hostile.slice(0, 40)).toContain(bad.status);
    }
  }, 180_000);

  it("a server killed with SIGKILL while runs are queued and running loses none and runs none twice", async () => {
    await suite.fake.script([
      { forQuery: "restart work", toolUse: [{ name: "exec", input: { command: "sleep", args: ["4"], timeout: 60000 } }] },
      { forQuery: "restart work", text: "survived" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    // --max-concurrent 2: two run, the third waits.
    const jobs = [
      await submit("alpha", { config, expert: "worker", query: "restart work 1" }),
      await submit("beta", { config, expert: "worker", query: "restart work 2" }),
      await submit("alpha", { config, expert: "worker", query: "restart work 3" }),
    ];
    const owners = ["alpha", "beta", "alpha"];
    const third = await checked(await api(`/v1/runs/${jobs[2]}`, tokens.alpha!), "/v1/runs/{jobId}", "get");
    expect(third.status).toBe("queued");
    // Both running runs are inside their tool call when the server dies.
    // (Their tool call, not a count of events: a run that first builds an image sends many before it starts.)
    for (const [index, jobId] of jobs.slice(0, 2).entries()) {
      await readSse(`${server.url}/v1/runs/${jobId}/events`, tokens[owners[index]!]!, { until: (e) => e.event === "callTools" });
    }
    await server.stop();
    server = await startServer();
    for (const [index, jobId] of jobs.entries()) {
      const view = await untilFinished(owners[index]!, jobId);
      const events = await readSse(`${server.url}/v1/runs/${jobId}/events`, tokens[owners[index]!]!);
      const stop = events.find((e) => e.event === "stopRunByError")?.data.error;
      expect(view.status, `${jobId}: ${JSON.stringify(stop ?? view)}`).toBe("completed");
      expect(events.filter((e) => e.event === "startRun"), jobId).toHaveLength(1);
      expect(new Set(events.map((e) => e.data.id)).size).toBe(events.length);
      expect(await leftAfterTeardown(docker!, jobId)).toEqual([]);
    }
  }, 300_000);

  it("under load (4 tenants, 100 submissions, 2 runs at a time): concurrency and spend limits hold, every tenant starts early, nothing is left", async () => {
    await suite.fake.script([{ text: "ok" }]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const names = ["load1", "load2", "load3", "load4"];
    for (const name of names) {
      // load1 may run one at a time; load4 has a daily budget its first run spends.
      const limits = name === "load1" ? ["--max-concurrent", "1"] : name === "load4" ? ["--max-cost-per-day", "0.000001"] : [];
      const added = await cli(["tenants", "add", name, ...limits, "--json"]);
      expect(added.exitCode, added.all).toBe(0);
      tokens[name] = (JSON.parse(added.stdout) as { token: string }).token;
      expect((await cli(["tenants", "secret", "set", name, "ANTHROPIC_API_KEY"], `sk-fake-${name}\n`)).exitCode).toBe(0);
    }
    // load1 floods the queue first; the others come after it.
    const jobs: Array<{ tenant: string; jobId: string }> = [];
    for (let i = 0; i < 64; i++) jobs.push({ tenant: "load1", jobId: await submit("load1", { config, expert: "worker", query: `load one ${i}` }) });
    for (let i = 0; i < 12; i++) for (const tenant of ["load2", "load3", "load4"]) jobs.push({ tenant, jobId: await submit(tenant, { config, expert: "worker", query: `load ${tenant} ${i}` }) });
    expect(jobs).toHaveLength(100);
    const views: Array<{ tenant: string; status: string; startedAt: number; finishedAt: number }> = [];
    for (const { tenant, jobId } of jobs) views.push({ tenant, ...(await untilFinished(tenant, jobId, 600_000)) } as (typeof views)[number]);
    expect(views.filter((v) => v.tenant !== "load4" && v.status !== "completed")).toEqual([]);
    // load4's budget: its first run spends it (one model call, then it ends), the rest are refused with the reason.
    const load4 = views.filter((v) => v.tenant === "load4");
    const statuses = JSON.stringify(load4.map((v) => [v.status, (v as { reason?: string }).reason]));
    // One run at a time may hold the budget, and none starts once it is spent: exactly one of load4's ran.
    expect(load4.filter((v) => v.status !== "cancelled"), statuses).toHaveLength(1);
    expect(load4.filter((v) => v.status === "cancelled" && /daily budget of \$0\.000001 is spent/.test(String((v as { reason?: string }).reason))), statuses).toHaveLength(load4.length - 1);
    // Never more than the server's two at once, never two of load1's.
    // The most runs going at one moment: starts and ends in time order (an end before a start at the same instant).
    const overlapping = (all: typeof views) => {
      const list = all.filter((v) => v.startedAt !== undefined);
      const moments = list.flatMap((v) => [{ at: v.startedAt, step: 1 }, { at: v.finishedAt, step: -1 }]).sort((a, b) => a.at - b.at || a.step - b.step);
      let going = 0;
      let most = 0;
      for (const { step } of moments) most = Math.max(most, (going += step));
      return most;
    };
    expect(overlapping(views)).toBeLessThanOrEqual(2);
    expect(overlapping(views.filter((v) => v.tenant === "load1"))).toBe(1);
    // Fair share: the late tenants' first runs start among the first few, not after load1's 64.
    const order = [...views].filter((v) => v.startedAt !== undefined).sort((a, b) => a.startedAt - b.startedAt).map((v) => v.tenant);
    for (const tenant of ["load2", "load3", "load4"]) expect(order.indexOf(tenant), order.slice(0, 10).join(",")).toBeLessThan(8);
    // Nothing of any of them is left on the engine.
    const deadline = Date.now() + 30_000;
    let left: string[];
    do {
      const containers = await docker!.listContainers({ all: true, filters: { label: ["perstack.managed=true"] } });
      left = containers.filter((c) => (c.Labels["perstack.jobs-dir"] ?? "").startsWith(data)).map((c) => c.Names[0] ?? c.Id);
      if (left.length > 0) await new Promise((resolve) => setTimeout(resolve, 500));
    } while (left.length > 0 && Date.now() < deadline);
    expect(left).toEqual([]);
  }, 900_000);
});
