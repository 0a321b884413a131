// POST /v1/comparisons and GET /v1/comparisons/{id}[/report]: `perstack compare` as a service. A comparison is one
// submission per runtime (each its own job, queued like any run, on its own copy of the workspace); once all have
// ended, the comparison is built from their records exactly as `perstack compare --from` builds it, and its report is
// the same report.html.
import type { DatabaseSync } from "node:sqlite";
import type { FastifyInstance, FastifyReply } from "fastify";
import { readFileSync } from "node:fs";
import { newId } from "../job/prepare-run.js";
import { packagePath } from "../package-root.js";
import { renderReportHtml } from "../compare/report-html.js";
import { comparisonFromJobs } from "../compare/run-comparison.js";
import type { Comparison } from "../compare/comparison.js";
import type { comparisonParamsSchema } from "./api-schemas.js";
import type { ReportLinks } from "./report-links.js";
import type { RunQueue } from "./run-queue.js";
import type { ServerRuns, Submission } from "./server-runs.js";

const PERSTACK_VERSION = (JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { version: string }).version;

export const comparisonBodySchema = {
  type: "object",
  required: ["config", "expert", "query", "runtimes"],
  additionalProperties: false,
  properties: {
    config: { type: "string", minLength: 1, description: "perstack.toml, as text" },
    expert: { type: "string", minLength: 1 },
    query: { type: "string", minLength: 1 },
    runtimes: { type: "array", minItems: 1, maxItems: 8, uniqueItems: true, items: { type: "string", minLength: 1 } },
    model: { type: "string" },
    workspace: { type: "string", description: "the workspace as a base64 tar.gz, given to every runtime's run" },
  },
} as const;

const comparisonViewSchema = {
  type: "object",
  required: ["id", "status", "runs"],
  properties: {
    id: { type: "string" },
    status: { type: "string", enum: ["running", "done"] },
    runs: {
      type: "array",
      items: { type: "object", required: ["runtime", "jobId", "status"], properties: { runtime: { type: "string" }, jobId: { type: "string" }, status: { type: "string" } } },
    },
    /** Once done: the comparison, as `perstack compare --json` prints it. */
    comparison: { type: "object", additionalProperties: true },
  },
} as const;

export const comparisonListSchema = {
  type: "object",
  required: ["comparisons"],
  properties: {
    comparisons: {
      type: "array",
      items: { type: "object", required: ["id", "status", "runs"], properties: { id: comparisonViewSchema.properties.id, status: comparisonViewSchema.properties.status, runs: comparisonViewSchema.properties.runs, createdAt: { type: "number" } } },
    },
  },
} as const;

interface ComparisonRow {
  id: string;
  tenant: string;
  runtimes: string;
  job_ids: string;
  created_at: number;
}

export interface ComparisonDeps {
  db: DatabaseSync;
  queue: RunQueue;
  runs: ServerRuns;
  /** Unpacks the base64 workspace into the two directories submit gives (api.ts). */
  fillWorkspace(base64: string | undefined): (workspace: string, original: string) => Promise<void>;
  /** The API's 404 and 429 (api.ts). */
  notFound(id: string): Error;
  rateLimit(tenant: string, reply: FastifyReply): void;
  links: ReportLinks;
}

export function registerComparisonRoutes(app: FastifyInstance, v1: FastifyInstance, deps: ComparisonDeps, schemas: { error: object; params: typeof comparisonParamsSchema; submitted: object }): void {
  const security = [{ bearer: [] }];
  const own = (tenant: string, id: string): ComparisonRow => {
    const row = deps.db.prepare("SELECT * FROM comparisons WHERE id = ? AND tenant = ?").get(id, tenant) as ComparisonRow | undefined;
    if (!row) throw deps.notFound(id);
    return row;
  };

  v1.post<{ Body: Omit<Submission, "runtime"> & { runtimes: string[]; workspace?: string } }>(
    "/comparisons",
    { schema: { security, body: comparisonBodySchema, response: { 202: { type: "object", required: ["id", "runs"], properties: { id: { type: "string" }, runs: comparisonViewSchema.properties.runs } }, "4xx": schemas.error } } },
    async (request, reply) => {
      deps.rateLimit(request.tenant, reply);
      const { runtimes, workspace, ...submission } = request.body;
      const runs: Array<{ runtime: string; jobId: string; status: string }> = [];
      // Each runtime's run is checked as it is queued: a config one runtime cannot run is the caller's 400, and what
      // was queued before it is cancelled, so nothing of a refused comparison runs.
      try {
        for (const runtime of runtimes) {
          const { run } = await deps.runs.submit(request.tenant, { ...submission, runtime }, deps.fillWorkspace(workspace));
          runs.push({ runtime, jobId: run.jobId, status: "queued" });
        }
      } catch (error) {
        for (const queued of runs) {
          const run = deps.queue.get(request.tenant, queued.jobId);
          if (run) deps.runs.cancel(run);
        }
        throw error;
      }
      const id = newId();
      deps.db.prepare("INSERT INTO comparisons (id, tenant, runtimes, job_ids, created_at) VALUES (?, ?, ?, ?, ?)").run(id, request.tenant, JSON.stringify(runtimes), JSON.stringify(runs.map((r) => r.jobId)), Date.now());
      return reply.code(202).send({ id, runs });
    },
  );

  const runsOf = (tenant: string, row: ComparisonRow) => {
    const runtimes = JSON.parse(row.runtimes) as string[];
    const jobIds = JSON.parse(row.job_ids) as string[];
    const runs = jobIds.map((jobId, index) => {
      const run = deps.queue.get(tenant, jobId);
      const status = run?.status === "finished" ? (run.outcome ?? "stoppedByError") : (run?.status ?? "cancelled");
      return { runtime: runtimes[index]!, jobId, status };
    });
    const done = runs.every((r) => r.status !== "queued" && r.status !== "running");
    return { id: row.id, status: done ? ("done" as const) : ("running" as const), runs };
  };

  const view = async (tenant: string, row: ComparisonRow) => {
    const summary = runsOf(tenant, row);
    const started = summary.runs.filter((r) => r.status !== "cancelled").map((r) => r.jobId);
    const comparison = summary.status === "done" && started.length > 0 ? await comparisonFromJobs(deps.runs.perstackDir(tenant), started, PERSTACK_VERSION) : undefined;
    return { ...summary, ...(comparison ? { comparison } : {}) };
  };

  // Newest first, without the built comparison (that reads every run's records): what a list shows.
  v1.get("/comparisons", { schema: { security, response: { 200: comparisonListSchema } } }, async (request) => {
    const rows = deps.db.prepare("SELECT * FROM comparisons WHERE tenant = ? ORDER BY created_at DESC LIMIT 200").all(request.tenant) as unknown as ComparisonRow[];
    return { comparisons: rows.map((row) => ({ ...runsOf(request.tenant, row), createdAt: row.created_at })) };
  });

  v1.get<{ Params: { id: string } }>("/comparisons/:id", { schema: { security, params: schemas.params, response: { 200: comparisonViewSchema, "4xx": schemas.error } } }, async (request) =>
    view(request.tenant, own(request.tenant, request.params.id)),
  );

  v1.get<{ Params: { id: string } }>(
    "/comparisons/:id/report",
    { schema: { security, params: schemas.params, response: { 200: { description: "report.html, as perstack compare writes it", content: { "text/html": { schema: { type: "string" } } } }, "4xx": schemas.error } } },
    async (request, reply) => sendReport(reply, await view(request.tenant, own(request.tenant, request.params.id))),
  );

  // For a browser frame, which cannot send the token: a short-lived link to the same report (report-links.ts).
  v1.get<{ Params: { id: string } }>(
    "/comparisons/:id/report-link",
    { schema: { security, params: schemas.params, response: { 200: reportLinkSchema, "4xx": schemas.error } } },
    (request) => ({ url: deps.links.link(request.tenant, own(request.tenant, request.params.id).id) }),
  );

  // The link's own route, outside /v1: the signature is its authority, for one tenant's one comparison.
  app.get<{ Params: { tenant: string; id: string }; Querystring: { expires: string; signature: string } }>(
    "/reports/:tenant/:id",
    { schema: { hide: true, params: { type: "object", required: ["tenant", "id"], properties: { tenant: schemas.params.properties.id, id: schemas.params.properties.id } }, querystring: { type: "object", required: ["expires", "signature"], properties: { expires: { type: "string", maxLength: 15 }, signature: { type: "string", maxLength: 64 } } } } },
    async (request, reply) => {
      const { tenant, id } = request.params;
      if (!deps.links.valid(tenant, id, request.query.expires, request.query.signature)) {
        return reply.code(403).send({ error: { code: "forbidden", message: "the report link is not valid or has expired; open the report from the console again" } });
      }
      return sendReport(reply, await view(tenant, own(tenant, id)));
    },
  );
}

export const reportLinkSchema = { type: "object", required: ["url"], properties: { url: { type: "string" } } } as const;

/** report.html once every run has ended; 409 before. */
export function sendReport(reply: FastifyReply, result: { id: string; comparison?: Comparison }): FastifyReply {
  if (!result.comparison) return reply.code(409).send({ error: { code: "not_done", message: `comparison ${result.id} is still running; its report is made once every run has ended` } });
  return reply.type("text/html; charset=utf-8").header("content-security-policy", REPORT_CSP).send(renderReportHtml(result.comparison));
}

/** The report is self-contained (no script or style from elsewhere): served as a document of its own, framed by the console only. */
export const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";
