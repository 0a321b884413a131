// `perstack ui`'s server (src/server/local-console.ts): the console's GET routes over local files, a token on every
// /v1 call, and only a loopback Host (a DNS-rebound name is refused). Real HTTP on loopback, so Host is what a
// browser would send.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLocalConsole } from "../../../src/server/local-console.js";
import { ev, perstackDir, writeJob } from "../history/job-fixtures.js";

const TOKEN = "local-test-token-0123456789";

describe("perstack ui: the local console's server", () => {
  const dir = perstackDir();
  let app: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    writeJob(dir, { job: { id: "job1", startedAt: 5_000 }, runs: { r1: [ev("startRun", "r1", 5_000), ev("completeRun", "r1", 6_000, { text: "done" })] } });
    writeJob(dir, { job: { id: "job2", startedAt: 9_000, status: "stoppedByError" }, runs: { r9: [ev("startRun", "r9", 9_000)] } });
    const comparison = join(dir, "comparisons", "cmp1");
    mkdirSync(comparison, { recursive: true });
    writeFileSync(join(comparison, "comparison.json"), JSON.stringify({ id: "cmp1", createdAt: 7_000, runs: [{ runtime: "perstack", jobId: "job1", status: "completed" }] }));
    writeFileSync(join(comparison, "report.html"), "<!doctype html><title>report</title>");
    app = await buildLocalConsole({ perstackDir: dir, token: TOKEN });
    await app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app.close();
    rmSync(dirname(dir), { recursive: true, force: true });
  });

  const get = (path: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) => fetch(`${base}${path}`, { headers });

  it("lists the local jobs newest first, in the API's shape, and says it is read-only", async () => {
    expect(await (await get("/v1/session")).json()).toEqual({ tenant: "local", mode: "local", readOnly: true });
    const list = (await (await get("/v1/runs")).json()) as { runs: Array<{ jobId: string; status: string; expert: string }> };
    expect(list.runs.map((r) => [r.jobId, r.status])).toEqual([["job2", "stoppedByError"], ["job1", "completed"]]);
    expect(list.runs[0]!.expert).toBe("lead");
    const page = (await (await get("/v1/runs?limit=1")).json()) as { runs: unknown[]; next?: string };
    expect(page.runs).toHaveLength(1);
    const rest = (await (await get(`/v1/runs?limit=1&before=${page.next}`)).json()) as { runs: Array<{ jobId: string }> };
    expect(rest.runs.map((r) => r.jobId)).toEqual(["job1"]);
    expect(((await (await get("/v1/runs/job1")).json()) as { totalSteps: number }).totalSteps).toBe(3);
  });

  it("streams a finished job's events, then end", async () => {
    const response = await get("/v1/runs/job1/events");
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await response.text();
    expect(text).toContain("event: startRun");
    expect(text).toContain("event: completeRun");
    expect(text.trimEnd().endsWith("event: end\ndata: {}")).toBe(true);
  });

  it("answers what it has not (a diff, a missing job or comparison) with a 404 in the API's shape", async () => {
    const diff = await get("/v1/runs/job1/diff");
    expect(diff.status).toBe(404);
    expect(((await diff.json()) as { error: { code: string } }).error.code).toBe("not_recorded");
    expect((await get("/v1/runs/nosuch")).status).toBe(404);
    expect((await get("/v1/comparisons/nosuch")).status).toBe(404);
    expect((await get("/v1/runs/..%2F..%2Fetc")).status).toBe(400);
  });

  it("lists comparisons and serves their report with a CSP of its own", async () => {
    const list = (await (await get("/v1/comparisons")).json()) as { comparisons: Array<{ id: string; runs: unknown[] }> };
    expect(list.comparisons.map((c) => c.id)).toEqual(["cmp1"]);
    const report = await get("/v1/comparisons/cmp1/report");
    expect(report.status).toBe(200);
    expect(report.headers.get("content-security-policy")).toContain("default-src 'none'");
    // A frame's way in: a signed link, which opens that report without the token, and nothing else.
    const { url } = (await (await get("/v1/comparisons/cmp1/report-link")).json()) as { url: string };
    const framed = await fetch(`${base}${url}`);
    expect(framed.status).toBe(200);
    expect(await framed.text()).toContain("<title>report</title>");
    expect((await fetch(`${base}${url.replace("cmp1", "cmp2")}`)).status).toBe(403);
    expect((await fetch(`${base}${url.replace(/signature=[^&]+/, "signature=x")}`)).status).toBe(403);
    expect((await fetch(`${base}${url.split("?")[0]}`)).status).toBe(403);
  });

  it("takes no action: POST routes do not exist", async () => {
    for (const path of ["/v1/runs", "/v1/runs/job1/cancel", "/v1/runs/job1/continue", "/v1/comparisons"]) {
      const response = await fetch(`${base}${path}`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: "{}" });
      expect(response.status, path).toBe(404);
    }
  });

  it("refuses /v1 without the token, or with another", async () => {
    expect((await get("/v1/runs", {})).status).toBe(401);
    expect((await get("/v1/runs", { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await get("/v1/runs", { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
  });

  it("refuses a Host that is not its loopback address (DNS rebinding), even with the token", async () => {
    const port = (app.server.address() as AddressInfo).port;
    const { request } = await import("node:http");
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/v1/runs", headers: { host, authorization: `Bearer ${TOKEN}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    expect(await status(`evil.example:${port}`)).toBe(403);
    expect(await status(`127.0.0.1.nip.io:${port}`)).toBe(403);
    expect(await status(`127.0.0.1:${port + 1}`)).toBe(403);
    expect(await status(`localhost:${port}`)).toBe(200);
    expect(await status(`127.0.0.1:${port}`)).toBe(200);
  });
});
