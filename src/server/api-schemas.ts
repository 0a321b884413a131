// The API's request and response schemas, as JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1). Fastify
// validates requests with them and serializes responses through them, so a response carries only the fields listed
// here (nothing else of a record, and never a secret, can leak into one); @fastify/swagger publishes them as
// /openapi.json. Data, not code.

export const errorSchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "string" }, message: { type: "string" } },
    },
  },
} as const;

const usageSchema = {
  type: "object",
  properties: {
    inputTokens: { type: "number" },
    outputTokens: { type: "number" },
    reasoningTokens: { type: "number" },
    totalTokens: { type: "number" },
    cachedInputTokens: { type: "number" },
  },
} as const;

export const RUN_STATUSES = ["queued", "running", "completed", "stoppedByError", "stoppedByMaxSteps", "stoppedByInteractiveTool", "cancelled"] as const;

export const runSchema = {
  type: "object",
  required: ["jobId", "status", "submittedAt"],
  properties: {
    jobId: { type: "string" },
    status: { type: "string", enum: [...RUN_STATUSES] },
    /** While queued: 1 for the next to start. */
    position: { type: "integer" },
    submittedAt: { type: "number" },
    startedAt: { type: "number" },
    finishedAt: { type: "number" },
    expert: { type: "string" },
    runtime: { type: "string" },
    totalSteps: { type: "integer" },
    usage: usageSchema,
    metered: {
      type: "object",
      properties: {
        requests: { type: "integer" },
        usage: { type: "object", additionalProperties: { type: "number" } },
        costUsd: { type: ["number", "null"] },
      },
    },
    latestCheckpointId: { type: "string" },
    /** Why it ended as it did, when its record cannot say (cancelled, or refused for a spent daily budget). */
    reason: { type: "string" },
    /** The model spend it was allowed: what was left of the tenant's daily budget when it started (USD). */
    allocatedUsd: { type: "number" },
    /** Its invocations' metered cost (USD). */
    costUsd: { type: "number" },
  },
} as const;

export const continueBodySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    query: { type: "string", minLength: 1 },
    interactiveAnswer: { type: "string", minLength: 1 },
    checkpointId: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$" },
  },
} as const;

/** What a submission says in text, the same in a JSON body and in a form. */
const submissionTextFields = {
  config: { type: "string", minLength: 1, description: "perstack.toml, as text" },
  expert: { type: "string", minLength: 1 },
  query: { type: "string", minLength: 1 },
  runtime: { type: "string" },
  model: { type: "string" },
} as const;

export const submitBodySchema = {
  type: "object",
  required: ["config", "expert", "query"],
  additionalProperties: false,
  properties: {
    ...submissionTextFields,
    limits: {
      type: "object",
      additionalProperties: false,
      properties: {
        maxDurationMs: { type: "integer", minimum: 1000 },
        maxOutputBytes: { type: "integer", minimum: 1024 },
        memoryBytes: { type: "integer", minimum: 67108864 },
      },
    },
    budgets: {
      type: "object",
      additionalProperties: false,
      properties: { maxCostUsd: { type: "number", exclusiveMinimum: 0 }, maxTokens: { type: "integer", minimum: 1 } },
    },
    workspace: { type: "string", description: "the workspace as a base64 tar.gz" },
  },
} as const;

/**
 * The same submission as a multipart form: text fields, `limits` and `budgets` as JSON text, and the workspace as a
 * file part (a tar.gz). The file part's value reaches the handler as bytes, so its schema names no type.
 */
export const submitMultipartSchema = {
  type: "object",
  required: ["config", "expert", "query"],
  additionalProperties: false,
  properties: {
    ...submissionTextFields,
    limits: { type: "string", description: "JSON: as `limits` of the JSON body" },
    budgets: { type: "string", description: "JSON: as `budgets` of the JSON body" },
    workspace: { description: "the workspace: a tar.gz file part" },
  },
} as const;

export const submittedSchema = {
  type: "object",
  required: ["jobId", "status", "position"],
  // "queued" for a new submission; sent again with its Idempotency-Key, where the run it made is now.
  properties: { jobId: { type: "string" }, status: { type: "string", enum: ["queued", "running", "finished", "cancelled"] }, position: { type: "integer" } },
} as const;

export const submissionKeyParamsSchema = {
  type: "object",
  required: ["key"],
  properties: { key: { type: "string", pattern: "^[A-Za-z0-9_-]{16,128}$" } },
} as const;

/** A submission cancelled by its key: the run it made (its status as for /cancel), or none (`cancelled`, no jobId). */
export const submissionCancelSchema = {
  type: "object",
  required: ["status"],
  properties: { status: { type: "string", enum: ["cancelled", "stopping", "ended"] }, jobId: { type: "string" } },
} as const;

export const runListSchema = {
  type: "object",
  required: ["runs"],
  properties: {
    runs: { type: "array", items: runSchema },
    /** Pass as `before` for the next page; absent on the last one. */
    next: { type: "string" },
  },
} as const;

export const listQuerySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    status: { type: "string", enum: [...RUN_STATUSES] },
    limit: { type: "integer", minimum: 1, maximum: 200, default: 50 },
    before: { type: "string", pattern: "^[0-9]{1,15}$" },
  },
} as const;

export const jobParamsSchema = {
  type: "object",
  required: ["jobId"],
  properties: { jobId: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$" } },
} as const;

export const comparisonParamsSchema = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$" } },
} as const;

export const checkpointParamsSchema = {
  type: "object",
  required: ["jobId", "checkpointId"],
  properties: {
    jobId: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$" },
    checkpointId: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$" },
  },
} as const;

export const checkpointListSchema = {
  type: "object",
  required: ["checkpoints"],
  properties: {
    checkpoints: {
      type: "array",
      items: {
        type: "object",
        required: ["id", "runId"],
        properties: { id: { type: "string" }, runId: { type: "string" }, stepNumber: { type: "integer" }, status: { type: "string" } },
      },
    },
  },
} as const;

/** A checkpoint is Perstack's own document: passed through as it is read back (job-reader.ts validates it). */
export const checkpointSchema = { type: "object", additionalProperties: true } as const;

export const cancelSchema = {
  type: "object",
  required: ["jobId", "status"],
  properties: { jobId: { type: "string" }, status: { type: "string", enum: ["cancelled", "stopping", "ended"] } },
} as const;

export const healthSchema = {
  type: "object",
  required: ["ok"],
  properties: { ok: { type: "boolean" }, queued: { type: "integer" }, running: { type: "integer" } },
} as const;

/** GET /v1/session: who the token is, and whether this server takes actions (`perstack ui` is read-only). */
export const sessionSchema = {
  type: "object",
  required: ["tenant", "mode", "readOnly"],
  properties: {
    tenant: { type: "string" },
    mode: { type: "string", enum: ["server", "local"] },
    readOnly: { type: "boolean" },
  },
} as const;
