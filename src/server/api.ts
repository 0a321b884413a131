// The HTTP API of `perstack serve` on Fastify: /v1 under a tenant's bearer token, /healthz, /metrics and
// /openapi.json. Every route has its schemas (api-schemas.ts): requests are validated by them, responses serialized
// through them. A tenant sees only its own runs: another tenant's job id answers 404 exactly as a missing one does,
// so ids leak nothing. Errors are `{error: {code, message}}`, in this project's words, never a library's.
import multipart from "@fastify/multipart";
import swagger from "@fastify/swagger";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { BadInputError, CheckpointNotFoundError, JobNotFoundError, PerstackError } from "../errors.js";
import type { Job } from "../model/perstack.js";
import { readCheckpoint, readJob } from "../storage/job-reader.js";
import { listCheckpoints } from "./checkpoint-list.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  cancelSchema,
  continueBodySchema,
  checkpointListSchema,
  checkpointParamsSchema,
  comparisonParamsSchema,
  checkpointSchema,
  errorSchema,
  healthSchema,
  jobParamsSchema,
  listQuerySchema,
  runListSchema,
  runSchema,
  sessionSchema,
  submitBodySchema,
  submitMultipartSchema,
  submittedSchema,
  submissionCancelSchema,
  submissionKeyParamsSchema,
  type RUN_STATUSES,
} from "./api-schemas.js";
import { describeValidationErrors } from "./validation-messages.js";
import type { QueuedRun, QueueStatus, RunQueue } from "./run-queue.js";
import { JobBusyError, SubmissionCancelledError, SubmissionPendingError, type ContinueRequest, type ServerRuns, type Submission } from "./server-runs.js";
import { SUBMISSION_KEY } from "./submission-keys.js";
import { streamRunEvents } from "./run-events-route.js";
import { extractUpload, packWorkspace, workspaceDiff } from "./workspace-upload.js";
import { registerComparisonRoutes } from "./comparisons.js";
import { registerConsole } from "./console-assets.js";
import { ReportLinks } from "./report-links.js";
import type { DatabaseSync } from "node:sqlite";
import type { Duplex } from "node:stream";

export interface ApiOptions {
  /** The server's database (comparisons live there). */
  db: DatabaseSync;
  runs: ServerRuns;
  queue: RunQueue;
  /** The tenant a token belongs to, or undefined. */
  authenticate(token: string): Promise<string | undefined> | string | undefined;
  limits: ApiLimits;
  /** One line per API call: tenant, route, status; never a body. */
  audit(line: string): void;
  /** Serve HTTPS with this certificate and key (PEM). */
  https?: { cert: Buffer; key: Buffer };
}

export interface ApiLimits {
  /** Submissions (new runs and continuations) a tenant may make per minute; past it, 429 with Retry-After. */
  maxSubmissionsPerMinute: number;
  /** A request body, base64 workspace included. */
  maxBodyBytes: number;
  maxConfigBytes: number;
  maxQueryBytes: number;
  /** The uploaded workspace once unpacked. */
  maxWorkspaceBytes: number;
  maxWorkspaceEntries: number;
}

declare module "fastify" {
  interface FastifyRequest {
    tenant: string;
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (jobId: string) => new ApiError(404, "not_found", `no run ${jobId}`);

/** The submission's Idempotency-Key header (submission-keys.ts), checked; undefined when there is none. */
function submissionKeyOf(request: FastifyRequest): string | undefined {
  const value = request.headers["idempotency-key"];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !SUBMISSION_KEY.test(value)) {
    throw new ApiError(400, "bad_request", "Idempotency-Key must be 16 to 128 letters, digits, '-' or '_' (a UUID, or 32 random hex digits)");
  }
  return value;
}

export async function buildApi(options: ApiOptions): Promise<FastifyInstance> {
  const settings = {
    logger: false,
    bodyLimit: options.limits.maxBodyBytes,
    ajv: { customOptions: { coerceTypes: "array" as const, removeAdditional: false, allErrors: false } },
    // What Node's HTTP parser refuses (headers over 16 KiB, a malformed request) gets the API's error shape too.
    clientErrorHandler: (error: NodeJS.ErrnoException, socket: Duplex) => {
      const tooLarge = error.code === "HPE_HEADER_OVERFLOW";
      const body = JSON.stringify({ error: tooLarge ? { code: "too_large", message: "the request's headers are larger than 16 KiB" } : { code: "bad_request", message: "the request is not valid HTTP" } });
      if (socket.writable) socket.end(`HTTP/1.1 ${tooLarge ? "431 Request Header Fields Too Large" : "400 Bad Request"}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
  };
  // Same routes either way; only the listener differs.
  const app = (options.https ? Fastify({ ...settings, https: options.https }) : Fastify(settings)) as unknown as FastifyInstance;
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "perstack serve", version: "1", description: "Run Perstack Experts on any runtime in sandboxes, as a multi-tenant service." },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    },
  });
  app.decorateRequest("tenant", "");
  // POST /v1/runs also takes a multipart form (curl -F): its fields become the body, the workspace file part bytes.
  await app.register(multipart, {
    attachFieldsToBody: "keyValues",
    limits: { files: 1, fields: 16, fileSize: options.limits.maxBodyBytes, fieldSize: Math.max(options.limits.maxConfigBytes, options.limits.maxQueryBytes) },
  });
  // A POST without a body (cancel) may still say it is JSON, as curl scripts often do: that is no body, not an error.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    if (body === "") {
      done(null, undefined);
      return;
    }
    parseJson(request, body as string, done);
  });
  handleErrors(app, options.limits.maxBodyBytes);
  app.addHook("onResponse", (request, reply, done) => {
    options.audit(`${new Date().toISOString()} tenant=${request.tenant || "-"} ${request.method} ${request.routeOptions.url ?? "-"} ${reply.statusCode}`);
    done();
  });

  const reportLinks = new ReportLinks();
  // The web console (static, no token needed to load it; everything it shows comes from /v1 with the tenant's token).
  await registerConsole(app);
  app.get("/healthz", { schema: { response: { 200: healthSchema } } }, () => ({ ok: true, ...options.queue.counts() }));
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());
  app.get("/metrics", { schema: { hide: true } }, (_request, reply) => {
    void reply.type("text/plain; version=0.0.4").send(metricsText(options.queue));
  });

  /**
   * Unpacks a tar.gz workspace (base64 in a JSON body, bytes from a form) into the run's two directories: the one
   * it works on, and the one kept as it was.
   */
  const fillWorkspace = (upload: string | Buffer | undefined) => {
    const archive = upload === undefined ? undefined : typeof upload === "string" ? decodeBase64(upload) : upload;
    const limits = { maxCompressedBytes: options.limits.maxBodyBytes, maxBytes: options.limits.maxWorkspaceBytes, maxEntries: options.limits.maxWorkspaceEntries, maxFileBytes: options.limits.maxWorkspaceBytes };
    return async (workspace: string, original: string) => {
      if (!archive) return;
      await extractUpload(archive, original, limits);
      await extractUpload(archive, workspace, limits);
    };
  };

  await app.register(
    async (v1) => {
      v1.addHook("onRequest", async (request) => {
        const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(request.headers.authorization ?? "");
        if (!match) throw new ApiError(401, "unauthorized", "send Authorization: Bearer <token> (perstack tenants add prints one)");
        const tenant = await options.authenticate(match[1]!);
        if (!tenant) throw new ApiError(401, "unauthorized", "the token is not valid (rotated or removed?); ask the operator for a new one");
        request.tenant = tenant;
      });
      const security = [{ bearer: [] }];
      const ownRun = (request: FastifyRequest<{ Params: { jobId: string } }>): QueuedRun => {
        const run = options.queue.get(request.tenant, request.params.jobId);
        if (!run) throw notFound(request.params.jobId);
        return run;
      };

      v1.get("/session", { schema: { security, response: { 200: sessionSchema } } }, (request) => ({ tenant: request.tenant, mode: "server", readOnly: false }));

      v1.post<{ Body: Submission & { workspace?: string | Buffer } }>(
        "/runs",
        {
          schema: {
            security,
            body: { content: { "application/json": { schema: submitBodySchema }, "multipart/form-data": { schema: submitMultipartSchema } } },
            response: { 202: submittedSchema, "4xx": errorSchema },
          },
        },
        async (request, reply) => {
          rateLimit(options, request.tenant, reply);
          const { workspace, ...fields } = request.body;
          const submission = request.isMultipart() ? fromForm(request, fields as unknown as Record<string, string>) : fields;
          if (Buffer.byteLength(submission.config) > options.limits.maxConfigBytes) throw new ApiError(413, "too_large", `config is larger than ${options.limits.maxConfigBytes} bytes`);
          if (Buffer.byteLength(submission.query) > options.limits.maxQueryBytes) throw new ApiError(413, "too_large", `query is larger than ${options.limits.maxQueryBytes} bytes`);
          const { run, position } = await options.runs.submit(request.tenant, submission, fillWorkspace(workspace), submissionKeyOf(request));
          return reply.code(202).send({ jobId: run.jobId, status: run.status, position });
        },
      );

      v1.get<{ Querystring: { status?: (typeof RUN_STATUSES)[number]; limit: number; before?: string } }>(
        "/runs",
        { schema: { security, querystring: listQuerySchema, response: { 200: runListSchema } } },
        (request) => {
          const { status, limit, before } = request.query;
          const queueStatus: QueueStatus | undefined = status === undefined ? undefined : status === "queued" || status === "running" || status === "cancelled" ? status : "finished";
          const rows = options.queue.list(request.tenant, { ...(queueStatus ? { status: queueStatus } : {}), limit: limit + 1, ...(before !== undefined ? { beforeSeq: Number(before) } : {}) });
          const page = rows.slice(0, limit);
          const runs = page.map((run) => runView(options, run)).filter((view) => status === undefined || view.status === status);
          return { runs, ...(rows.length > limit ? { next: String(page.at(-1)!.seq) } : {}) };
        },
      );

      v1.get<{ Params: { jobId: string } }>("/runs/:jobId", { schema: { security, params: jobParamsSchema, response: { 200: runSchema, "4xx": errorSchema } } }, (request) =>
        runView(options, ownRun(request)),
      );

      v1.get<{ Params: { jobId: string } }>(
        "/runs/:jobId/events",
        { schema: { security, params: jobParamsSchema, response: { 200: { description: "Server-Sent Events: each event's id resumes with Last-Event-ID", content: { "text/event-stream": { schema: { type: "string" } } } }, "4xx": errorSchema } } },
        async (request, reply) => {
          const run = ownRun(request);
          const perstackDir = options.runs.perstackDir(run.tenant);
          const recorded = () => existsSync(join(perstackDir, "jobs", run.jobId, "job.json"));
          await streamRunEvents(request, reply, {
            perstackDir,
            jobId: run.jobId,
            // The job's latest invocation: a run is marked started a moment before its job.json is written.
            phase: () => {
              const now = options.queue.get(run.tenant, run.jobId);
              if (!now || now.status === "cancelled") return "never";
              if (now.status === "queued") return "waiting";
              if (!recorded()) return now.status === "running" ? "waiting" : "never";
              // A continuation marked running before it rewrote job.json: the record still says the last one ended,
              // and a feed opened now would end at once.
              if (now.status === "running" && !jobRunningSince(perstackDir, run.jobId, now.startedAt)) return "waiting";
              return "begun";
            },
          });
        },
      );

      v1.post<{ Params: { key: string } }>(
        "/submissions/:key/cancel",
        { schema: { security, params: submissionKeyParamsSchema, response: { 200: submissionCancelSchema, "4xx": errorSchema } } },
        (request) => {
          const cancelled = options.runs.cancelSubmission(request.tenant, request.params.key);
          return cancelled ? { status: cancelled.status, jobId: cancelled.run.jobId } : { status: "cancelled" };
        },
      );

      v1.post<{ Params: { jobId: string } }>("/runs/:jobId/cancel", { schema: { security, params: jobParamsSchema, response: { 200: cancelSchema, "4xx": errorSchema } } }, (request) => {
        const run = ownRun(request);
        return { jobId: run.jobId, status: options.runs.cancel(run) };
      });

      v1.post<{ Params: { jobId: string }; Body: ContinueRequest }>(
        "/runs/:jobId/continue",
        { schema: { security, params: jobParamsSchema, body: continueBodySchema, response: { 202: submittedSchema, "4xx": errorSchema } } },
        (request, reply) => {
          const run = ownRun(request);
          rateLimit(options, request.tenant, reply);
          const { run: next, position } = options.runs.continueJob(run, request.body ?? {}, submissionKeyOf(request));
          return reply.code(202).send({ jobId: next.jobId, status: next.status, position });
        },
      );

      registerComparisonRoutes(
        app,
        v1,
        { db: options.db, queue: options.queue, runs: options.runs, links: reportLinks, fillWorkspace, notFound: (id) => new ApiError(404, "not_found", `no comparison ${id}`), rateLimit: (tenant, reply) => rateLimit(options, tenant, reply) },
        { error: errorSchema, params: comparisonParamsSchema, submitted: submittedSchema },
      );

      v1.get<{ Params: { jobId: string } }>("/runs/:jobId/checkpoints", { schema: { security, params: jobParamsSchema, response: { 200: checkpointListSchema, "4xx": errorSchema } } }, (request) => {
        const run = ownRun(request);
        return { checkpoints: listCheckpoints(options.runs.perstackDir(run.tenant), run.jobId) };
      });

      v1.get<{ Params: { jobId: string; checkpointId: string } }>(
        "/runs/:jobId/checkpoints/:checkpointId",
        { schema: { security, params: checkpointParamsSchema, response: { 200: checkpointSchema, "4xx": errorSchema } } },
        (request) => {
          const run = ownRun(request);
          return readCheckpoint(options.runs.perstackDir(run.tenant), run.jobId, request.params.checkpointId);
        },
      );

      v1.get<{ Params: { jobId: string } }>(
        "/runs/:jobId/workspace",
        { schema: { security, params: jobParamsSchema, response: { 200: { description: "the workspace as a tar.gz", content: { "application/gzip": { schema: { type: "string", contentMediaType: "application/gzip" } } } }, "4xx": errorSchema } } },
        (request, reply) => {
          const run = ownRun(request);
          return reply.type("application/gzip").header("content-disposition", `attachment; filename="${run.jobId}-workspace.tar.gz"`).send(packWorkspace(options.runs.workspaceDir(run.tenant, run.jobId)));
        },
      );

      v1.get<{ Params: { jobId: string } }>(
        "/runs/:jobId/diff",
        { schema: { security, params: jobParamsSchema, response: { 200: { description: "a unified diff of the workspace against the upload", content: { "text/x-diff": { schema: { type: "string" } } } }, "4xx": errorSchema } } },
        async (request, reply) => {
          const run = ownRun(request);
          const diff = await workspaceDiff(options.runs.originalDir(run.tenant, run.jobId), options.runs.workspaceDir(run.tenant, run.jobId), { maxBytes: 16 * 1024 * 1024 });
          return reply.type("text/x-diff; charset=utf-8").send(diff);
        },
      );
    },
    { prefix: "/v1" },
  );
  return app;
}

/** A form's fields as the JSON body's: `limits` and `budgets` arrive as JSON text, checked by the same schemas. */
function fromForm(request: FastifyRequest, fields: Record<string, string>): Submission {
  const { limits, budgets, ...text } = fields;
  const parsed: Record<string, unknown> = { ...text };
  for (const [name, value] of Object.entries({ limits, budgets })) {
    if (value === undefined) continue;
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch {
      throw new ApiError(400, "bad_request", `body.${name} must be JSON, e.g. {"maxDurationMs": 600000}`);
    }
    parsed[name] = json;
  }
  const validate = request.compileValidationSchema(submitBodySchema);
  if (!validate(parsed)) throw new ApiError(400, "bad_request", describeValidationErrors(validate.errors ?? [], "body"));
  return parsed as unknown as Submission;
}

/** A tenant past its submissions per minute gets a 429 that says when to try again. */
function rateLimit(options: ApiOptions, tenant: string, reply: FastifyReply): void {
  const limit = options.limits.maxSubmissionsPerMinute;
  if (options.queue.submittedSince(tenant, Date.now() - 60_000) < limit) return;
  void reply.header("retry-after", "60");
  throw new ApiError(429, "rate_limited", `more than ${limit} submissions in a minute; wait, then submit again`);
}

/** Every error as `{error: {code, message}}` in this project's words: validation, ours, the framework's, unknown routes. */
export function handleErrors(app: FastifyInstance, maxBodyBytes: number): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return sendError(reply, new ApiError(400, "bad_request", describeValidationErrors(error.validation, error.validationContext ?? "request")));
    if (error instanceof ApiError) return sendError(reply, error);
    if (error instanceof JobNotFoundError || error instanceof CheckpointNotFoundError) return sendError(reply, new ApiError(404, "not_found", error.message));
    if (error instanceof JobBusyError) return sendError(reply, new ApiError(409, "busy", error.message));
    if (error instanceof SubmissionCancelledError) return sendError(reply, new ApiError(409, "cancelled", error.message));
    if (error instanceof SubmissionPendingError) return sendError(reply, new ApiError(409, "in_progress", error.message));
    if (error instanceof BadInputError) return sendError(reply, new ApiError(400, "bad_request", error.message));
    if (error.statusCode === 413) return sendError(reply, new ApiError(413, "too_large", `the request body is larger than ${maxBodyBytes} bytes; send a smaller workspace`));
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) return sendError(reply, new ApiError(error.statusCode, "bad_request", "the request could not be read; send JSON with Content-Type: application/json"));
    request.log.error(error);
    return sendError(reply, new ApiError(500, "internal", error instanceof PerstackError ? error.message : "internal error; see the server's log"));
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, new ApiError(404, "not_found", "no such route; see /openapi.json")));
}

export function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.status === 401) void reply.header("www-authenticate", "Bearer");
  return reply.code(error.status).type("application/json").send({ error: { code: error.code, message: error.message } });
}

function decodeBase64(text: string): Buffer {
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/.test(text)) throw new ApiError(400, "bad_request", "workspace must be a base64 tar.gz");
  return Buffer.from(text, "base64");
}

/** Whether job.json says the job is running, or has ended since `since` (an invocation that started then). */
function jobRunningSince(perstackDir: string, jobId: string, since: number | undefined): boolean {
  try {
    const job = readJob(perstackDir, jobId);
    return job.status === "running" || (job.finishedAt ?? 0) >= (since ?? 0);
  } catch {
    return false;
  }
}

/** The server's record of a run, with job.json's once the run has begun. */
function runView(options: ApiOptions, run: QueuedRun): Record<string, unknown> {
  let job: Job | undefined;
  if (run.status !== "queued" && run.status !== "cancelled") {
    try {
      job = readJob(options.runs.perstackDir(run.tenant), run.jobId);
    } catch {
      job = undefined;
    }
  }
  const submission = JSON.parse(run.request) as Submission;
  const startedAt = options.queue.first(run.tenant, run.jobId)?.startedAt ?? run.startedAt;
  const status = run.status === "finished" ? (run.outcome ?? job?.status) : run.status === "running" ? "running" : run.status;
  return {
    jobId: run.jobId,
    status,
    ...(run.status === "queued" ? { position: options.queue.position(run) } : {}),
    submittedAt: run.submittedAt,
    // The job's start (its first invocation's), as `perstack jobs` shows it; finishedAt is its latest invocation's.
    ...(startedAt !== undefined ? { startedAt } : {}),
    ...(run.finishedAt !== undefined ? { finishedAt: run.finishedAt } : {}),
    expert: submission.expert,
    ...(job ? { runtime: job.runtime, totalSteps: job.totalSteps, usage: job.usage } : {}),
    ...(job?.metered ? { metered: job.metered } : {}),
    ...(job?.latestCheckpointId ? { latestCheckpointId: job.latestCheckpointId } : {}),
    ...(run.reason !== undefined ? { reason: run.reason } : {}),
    ...(run.allocatedUsd !== undefined ? { allocatedUsd: run.allocatedUsd } : {}),
    ...(job?.metered && typeof job.metered.costUsd === "number" ? { costUsd: job.metered.costUsd } : {}),
  };
}

function metricsText(queue: RunQueue): string {
  const { queued, running } = queue.counts();
  const lines = [
    "# HELP perstack_runs_queued Runs waiting to start.",
    "# TYPE perstack_runs_queued gauge",
    `perstack_runs_queued ${queued}`,
    "# HELP perstack_runs_running Runs going now.",
    "# TYPE perstack_runs_running gauge",
    `perstack_runs_running ${running}`,
    "# HELP perstack_runs_finished_total Runs that ended, by outcome.",
    "# TYPE perstack_runs_finished_total counter",
    ...queue.outcomes().map(({ outcome, count }) => `perstack_runs_finished_total{outcome="${outcome.replace(/[^A-Za-z]/g, "")}"} ${count}`),
    "# HELP perstack_run_duration_seconds How long finished runs took, from start to end.",
    "# TYPE perstack_run_duration_seconds histogram",
    ...histogram("perstack_run_duration_seconds", queue.durations().map((ms) => ms / 1000), [1, 5, 15, 60, 300, 900, 3600]),
    "# HELP perstack_tenant_spend_usd_today What each tenant's finished runs cost today (UTC), metered by the gateway.",
    "# TYPE perstack_tenant_spend_usd_today gauge",
    // Tenant names are letters, digits, '-' and '_' (tenant-store.ts): nothing to escape in a label.
    ...queue.spendToday().map(({ tenant, usd }) => `perstack_tenant_spend_usd_today{tenant="${tenant}"} ${usd}`),
  ];
  return `${lines.join("\n")}\n`;
}

function histogram(name: string, values: number[], buckets: number[]): string[] {
  const lines = buckets.map((le) => `${name}_bucket{le="${le}"} ${values.filter((v) => v <= le).length}`);
  lines.push(`${name}_bucket{le="+Inf"} ${values.length}`, `${name}_sum ${values.reduce((a, b) => a + b, 0)}`, `${name}_count ${values.length}`);
  return lines;
}
