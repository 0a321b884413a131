// `perstack ui`: the web console over this directory's perstack/jobs and perstack/comparisons, read-only, for one
// user on loopback. The routes are the GET routes of `perstack serve` with the same shapes (the console is one
// program for both), answered from the local files instead of a server's queue: nothing here starts, stops or changes
// a run.
//
// Loopback is not a boundary on its own: any local user can connect, and a web page the user visits can reach
// 127.0.0.1 through DNS rebinding. So every /v1 call needs the token this process made (printed in the console's URL),
// and every request must name this server by a loopback Host, which a rebound name never is.
import { timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { Comparison } from "../compare/comparison.js";
import { isSafeId } from "../model/ids.js";
import type { Job } from "../model/perstack.js";
import { listJobs, readCheckpoint, readJob } from "../storage/job-reader.js";
import { checkpointListSchema, checkpointParamsSchema, checkpointSchema, comparisonParamsSchema, errorSchema, jobParamsSchema, listQuerySchema, runListSchema, runSchema, sessionSchema, type RUN_STATUSES } from "./api-schemas.js";
import { ApiError, handleErrors, sendError } from "./api.js";
import { listCheckpoints } from "./checkpoint-list.js";
import { comparisonListSchema, REPORT_CSP, reportLinkSchema } from "./comparisons.js";
import { ReportLinks } from "./report-links.js";
import { registerConsole } from "./console-assets.js";
import { streamRunEvents } from "./run-events-route.js";

export interface LocalConsoleOptions {
  /** The perstack directory whose jobs and comparisons are shown. */
  perstackDir: string;
  /** What the console must send as its bearer token. */
  token: string;
}

const LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"];

export async function buildLocalConsole(options: LocalConsoleOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, ajv: { customOptions: { coerceTypes: "array" as const, removeAdditional: false, allErrors: false } } });
  handleErrors(app, 1024 * 1024);
  const expected = Buffer.from(`Bearer ${options.token}`);
  app.addHook("onRequest", async (request) => {
    const port = (app.server.address() as AddressInfo | null)?.port;
    const host = (request.headers.host ?? "").toLowerCase();
    if (!LOOPBACK_HOSTS.some((name) => host === `${name}:${port}`)) {
      throw new ApiError(403, "forbidden", `perstack ui answers only at its loopback address (http://127.0.0.1:${port}/), not as "${host.slice(0, 80)}"`);
    }
    if (!request.url.startsWith("/v1/")) return;
    const sent = Buffer.from(request.headers.authorization ?? "");
    if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
      throw new ApiError(401, "unauthorized", "send the token perstack ui printed (open the URL it printed)");
    }
  });
  await registerConsole(app);

  const { perstackDir } = options;
  const links = new ReportLinks();
  const comparisonsDir = join(perstackDir, "comparisons");

  await app.register(
    async (v1) => {
      v1.get("/session", { schema: { response: { 200: sessionSchema } } }, () => ({ tenant: "local", mode: "local", readOnly: true }));

      v1.get<{ Querystring: { status?: (typeof RUN_STATUSES)[number]; limit: number; before?: string } }>("/runs", { schema: { querystring: listQuerySchema, response: { 200: runListSchema } } }, (request) => {
        const { status, limit, before } = request.query;
        // Newest first; a page continues before the last one's start time.
        const jobs = listJobs(perstackDir)
          .jobs.filter((job) => (status === undefined || job.status === status) && (before === undefined || job.startedAt < Number(before)))
          .sort((a, b) => b.startedAt - a.startedAt);
        const page = jobs.slice(0, limit);
        return { runs: page.map(jobView), ...(jobs.length > limit ? { next: String(page.at(-1)!.startedAt) } : {}) };
      });

      v1.get<{ Params: { jobId: string } }>("/runs/:jobId", { schema: { params: jobParamsSchema, response: { 200: runSchema, "4xx": errorSchema } } }, (request) => jobView(readJob(perstackDir, request.params.jobId)));

      v1.get<{ Params: { jobId: string } }>("/runs/:jobId/events", { schema: { params: jobParamsSchema, response: { "4xx": errorSchema } } }, async (request, reply) => {
        const { jobId } = request.params;
        readJob(perstackDir, jobId);
        // A local job is begun once it has its job.json; the feed ends when it stops running.
        await streamRunEvents(request, reply, { perstackDir, jobId, phase: () => "begun" });
      });

      v1.get<{ Params: { jobId: string } }>("/runs/:jobId/checkpoints", { schema: { params: jobParamsSchema, response: { 200: checkpointListSchema, "4xx": errorSchema } } }, (request) => {
        readJob(perstackDir, request.params.jobId);
        return { checkpoints: listCheckpoints(perstackDir, request.params.jobId) };
      });

      v1.get<{ Params: { jobId: string; checkpointId: string } }>("/runs/:jobId/checkpoints/:checkpointId", { schema: { params: checkpointParamsSchema, response: { 200: checkpointSchema, "4xx": errorSchema } } }, (request) =>
        readCheckpoint(perstackDir, request.params.jobId, request.params.checkpointId),
      );

      v1.get<{ Params: { jobId: string } }>("/runs/:jobId/diff", { schema: { params: jobParamsSchema, response: { "4xx": errorSchema } } }, (request, reply) => {
        readJob(perstackDir, request.params.jobId);
        // A local run changes the directory it ran in: there is no upload to compare against, the changes are there.
        return sendError(reply, new ApiError(404, "not_recorded", "a local run changes your workspace itself; see its changes there (git diff)"));
      });

      v1.get("/comparisons", { schema: { response: { 200: comparisonListSchema } } }, () => ({
        comparisons: localComparisons(comparisonsDir).map(({ comparison }) => ({ ...comparisonRuns(comparison), createdAt: comparison.createdAt })),
      }));

      v1.get<{ Params: { id: string } }>("/comparisons/:id", { schema: { params: comparisonParamsSchema, response: { "4xx": errorSchema } } }, (request) => {
        const comparison = readComparison(comparisonsDir, request.params.id);
        return { ...comparisonRuns(comparison), comparison };
      });

      v1.get<{ Params: { id: string } }>("/comparisons/:id/report", { schema: { params: comparisonParamsSchema, response: { "4xx": errorSchema } } }, (request, reply) => sendLocalReport(reply, request.params.id));

      // A frame cannot send the token: a short-lived signed link instead, as `perstack serve` gives (report-links.ts).
      v1.get<{ Params: { id: string } }>("/comparisons/:id/report-link", { schema: { params: comparisonParamsSchema, response: { 200: reportLinkSchema, "4xx": errorSchema } } }, (request) => {
        readComparison(comparisonsDir, request.params.id);
        return { url: links.link("local", request.params.id) };
      });
    },
    { prefix: "/v1" },
  );
  app.get<{ Params: { tenant: string; id: string }; Querystring: { expires?: string; signature?: string } }>("/reports/:tenant/:id", { schema: { hide: true, params: { type: "object", properties: { tenant: comparisonParamsSchema.properties.id, id: comparisonParamsSchema.properties.id } } } }, (request, reply) => {
    const { tenant, id } = request.params;
    if (!links.valid(tenant, id, request.query.expires ?? "", request.query.signature ?? "")) throw new ApiError(403, "forbidden", "the report link is not valid or has expired; open the report from the console again");
    return sendLocalReport(reply, id);
  });

  /** report.html as `perstack compare` wrote it; its content came from agents' runs. */
  function sendLocalReport(reply: FastifyReply, id: string): FastifyReply {
    readComparison(comparisonsDir, id);
    const path = join(comparisonsDir, id, "report.html");
    if (!existsSync(path)) throw new ApiError(404, "not_found", `comparison ${id} has no report.html`);
    return reply.type("text/html; charset=utf-8").header("content-security-policy", REPORT_CSP).send(readFileSync(path));
  }
  return app;
}

/** A local job as the API's run record (server-only fields, such as the queue position, absent). */
function jobView(job: Job): Record<string, unknown> {
  return {
    jobId: job.id,
    status: job.status,
    submittedAt: job.startedAt,
    startedAt: job.startedAt,
    ...(job.finishedAt !== undefined ? { finishedAt: job.finishedAt } : {}),
    expert: job.coordinatorExpertKey,
    runtime: job.runtime,
    totalSteps: job.totalSteps,
    usage: job.usage,
    ...(job.metered ? { metered: job.metered } : {}),
    ...(job.latestCheckpointId ? { latestCheckpointId: job.latestCheckpointId } : {}),
    ...(job.metered && typeof job.metered.costUsd === "number" ? { costUsd: job.metered.costUsd } : {}),
  };
}

function comparisonRuns(comparison: Comparison): { id: string; status: "done"; runs: Array<{ runtime: string; jobId: string; status: string }> } {
  return { id: comparison.id, status: "done", runs: comparison.runs.map((run) => ({ runtime: run.runtime, jobId: run.jobId, status: run.status })) };
}

/** perstack/comparisons/<id>/comparison.json, newest first; a directory without a readable one is left out. */
function localComparisons(dir: string): Array<{ comparison: Comparison }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ comparison: Comparison }> = [];
  for (const name of names) {
    if (!isSafeId(name)) continue;
    try {
      out.push({ comparison: readComparison(dir, name) });
    } catch {
      // Not a comparison (or one being written): not listed.
    }
  }
  return out.sort((a, b) => b.comparison.createdAt - a.comparison.createdAt);
}

function readComparison(dir: string, id: string): Comparison {
  let comparison: Comparison;
  try {
    comparison = JSON.parse(readFileSync(join(dir, id, "comparison.json"), "utf8")) as Comparison;
  } catch {
    throw new ApiError(404, "not_found", `no comparison ${id}`);
  }
  if (typeof comparison !== "object" || comparison === null || !Array.isArray(comparison.runs)) throw new ApiError(404, "not_found", `no comparison ${id}`);
  // Listed by the directory's name, which is what the console asks for again.
  return { ...comparison, id };
}
