// The perstack.toml schema. Objects are strict so that the schema knows every key (the JSON Schema that editors
// use is exported from it). The loader (load.ts) is what makes a stray key a warning rather than an error: Perstack
// strips keys it does not know, and its own published files rely on that, so a file Perstack runs must run here.
// Keys Perstack accepts but this project does not act on yet are declared in PERSTACK_ONLY_KEYS: they parse, and
// the loader warns about each one found.
import { z } from "zod";
import { domainPatternProblem } from "./domain-pattern.js";

// "local" is Perstack's current name for its built-in runtime; "perstack" and "docker" are the seed's names for it.
export const RUNTIME_NAMES = ["perstack", "local", "docker", "claude-code", "gemini", "codex", "cursor"] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];

export const PROVIDER_NAMES = [
  "anthropic",
  "openai",
  "google",
  "azure-openai",
  "amazon-bedrock",
  "google-vertex",
  "deepseek",
  "ollama",
] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

export const EXPERT_KEY = /^(@[a-z0-9][a-z0-9_-]*\/)?[a-z0-9][a-z0-9_-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
// An npm package spec as it may appear in packageName: optional scope, name, optional @version/@tag/@range.
export const NPM_PACKAGE_SPEC = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(@[A-Za-z0-9.^~<>=*|+_ -]+)?$/;

const envName = z.string().regex(ENV_NAME, { error: "must be an environment variable name like MY_API_KEY" });

const domainPattern = z.string().superRefine((value, ctx) => {
  const problem = domainPatternProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: `"${value}" ${problem}; use an exact host or *.domain` });
});

const httpUrl = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: `"${value}" is not a URL; write e.g. https://api.example.com` });
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    ctx.addIssue({ code: "custom", message: `"${value}" must use http or https` });
  } else if (url.username || url.password) {
    ctx.addIssue({ code: "custom", message: "must not carry credentials; use the provider's key variable" });
  }
});

const headerName = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const headers = z.record(
  z.string().regex(headerName, { error: "is not a valid HTTP header name" }),
  z.string().refine((v) => !/[\r\n]/.test(v), { error: "must not contain line breaks" }),
);

const baseSetting = { baseUrl: httpUrl.optional(), headers: headers.optional() };

const providerSchemas = [
  z.strictObject({ providerName: z.literal("anthropic"), setting: z.strictObject(baseSetting).optional() }),
  z.strictObject({
    providerName: z.literal("openai"),
    setting: z
      .strictObject({
        ...baseSetting,
        organization: z.string().optional(),
        project: z.string().optional(),
        // Accepted by Perstack; parsed and warned about.
        name: z.string().optional(),
      })
      .optional(),
  }),
  z.strictObject({ providerName: z.literal("google"), setting: z.strictObject(baseSetting).optional() }),
  z.strictObject({
    providerName: z.literal("azure-openai"),
    setting: z
      .strictObject({
        ...baseSetting,
        resourceName: z.string().optional(),
        apiVersion: z.string().optional(),
        // Accepted by Perstack; parsed and warned about.
        useDeploymentBasedUrls: z.boolean().optional(),
      })
      .optional(),
  }),
  z.strictObject({
    providerName: z.literal("amazon-bedrock"),
    setting: z.strictObject({ ...baseSetting, region: z.string().optional() }).optional(),
  }),
  z.strictObject({
    providerName: z.literal("google-vertex"),
    setting: z
      .strictObject({ ...baseSetting, project: z.string().optional(), location: z.string().optional() })
      .optional(),
  }),
  z.strictObject({ providerName: z.literal("deepseek"), setting: z.strictObject(baseSetting).optional() }),
  z.strictObject({ providerName: z.literal("ollama"), setting: z.strictObject(baseSetting).optional() }),
] as const;

export const providerSchema = z.discriminatedUnion("providerName", providerSchemas);
export type ProviderConfig = z.infer<typeof providerSchema>;

const toolFilter = z.array(z.string().regex(TOOL_NAME, { error: "is not a tool name" }));

const skillCommon = {
  description: z.string().optional().describe("What the skill is for; shown to the model."),
  rule: z.string().optional().describe("How the expert must use the skill; added to its instructions."),
  pick: toolFilter.optional().describe("Only these tools of the skill."),
  omit: toolFilter.optional().describe("All tools of the skill but these."),
};

export const mcpStdioSkillSchema = z
  .strictObject({
    type: z.literal("mcpStdioSkill"),
    ...skillCommon,
    command: z.string().regex(/^[a-zA-Z0-9._/-]+$/, { error: "must be a program name like npx or node" }),
    packageName: z
      .string()
      .regex(NPM_PACKAGE_SPEC, { error: "must be a package name, optionally with @version" })
      .optional(),
    args: z
      .array(z.string().refine((a) => !a.includes("\0"), { error: "must not contain NUL" }))
      .optional()
      .describe("The command's arguments (instead of packageName), e.g. [\"-y\", \"@scope/server\"]."),
    requiredEnv: z.array(envName).optional().describe("Variables this skill gets from the host (by name; values never enter files)."),
    allowedDomains: z.array(domainPattern).optional().describe("Hosts the sandbox may reach for this skill: exact hosts or *.domain."),
    lazyInit: z.boolean().optional().describe("Accepted for Perstack compatibility; not used by this version."),
  })
  .superRefine((skill, ctx) => {
    const hasPackage = skill.packageName !== undefined;
    const hasArgs = skill.args !== undefined;
    if (hasPackage === hasArgs) {
      ctx.addIssue({
        code: "custom",
        path: hasPackage ? ["args"] : [],
        message: hasPackage
          ? "give packageName or args, not both"
          : "needs packageName (an npm package to run) or args (the command's arguments)",
      });
    }
  });

export const mcpSseSkillSchema = z.strictObject({
  type: z.literal("mcpSseSkill"),
  ...skillCommon,
  endpoint: z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: "custom", message: `"${value}" is not a URL` });
      return;
    }
    if (url.protocol !== "https:") ctx.addIssue({ code: "custom", message: "must be an https:// URL" });
    else if (domainPatternProblem(url.hostname)) {
      ctx.addIssue({ code: "custom", message: `host "${url.hostname}" must be a public host name` });
    }
  }),
  allowedDomains: z.array(domainPattern).optional(),
});

const jsonSchemaString = z.string().superRefine((value, ctx) => {
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      ctx.addIssue({ code: "custom", message: "must be a JSON object (a JSON Schema)" });
    }
  } catch {
    ctx.addIssue({ code: "custom", message: "is not valid JSON; write the JSON Schema as a string" });
  }
});

export const interactiveSkillSchema = z.strictObject({
  type: z.literal("interactiveSkill"),
  description: z.string().optional(),
  rule: z.string().optional(),
  tools: z.record(
    z.string().regex(TOOL_NAME, { error: "is not a tool name" }),
    z.strictObject({ description: z.string().optional(), inputJsonSchema: jsonSchemaString }),
  ),
});

export const skillSchema = z.discriminatedUnion("type", [
  mcpStdioSkillSchema,
  mcpSseSkillSchema,
  interactiveSkillSchema,
]);
export type SkillConfig = z.infer<typeof skillSchema>;
export type McpStdioSkillConfig = z.infer<typeof mcpStdioSkillSchema>;

export const expertSchema = z.strictObject({
  version: z.string().default("1.0.0").describe("The expert's version (default 1.0.0)."),
  description: z.string().optional().describe("What the expert does; shown to experts that delegate to it."),
  instruction: z
    .string({ error: "is required: say what this expert does" })
    .min(1, { error: "must not be empty" })
    .describe("The expert's instructions (its system prompt)."),
  delegates: z.array(z.string()).optional().describe("Keys of the experts this one may hand work to."),
  tags: z.array(z.string()).optional(),
  // Skill names are free-form, as in Perstack ("@perstack/base" is its usual name for the base skill); where a
  // runtime needs a safe name (an MCP server name, a directory) the plan derives one.
  skills: z
    .record(
      z.string().regex(/^\P{Cc}{1,128}$/u, { error: "must be 1 to 128 characters with no control characters" }),
      skillSchema,
    )
    .optional(),
  // Accepted by Perstack; parsed and warned about (see PERSTACK_ONLY_KEYS).
  minRuntimeVersion: z.string().optional(),
  providerTools: z.unknown().optional(),
  providerSkills: z.unknown().optional(),
  providerToolOptions: z.unknown().optional(),
});
export type ExpertConfig = z.infer<typeof expertSchema>;

const reasoningBudget = z.union([z.enum(["none", "minimal", "low", "medium", "high"]), z.number().int().min(0)]);

export const perstackConfigSchema = z.strictObject({
  // Any string parses here so that resolve.ts can answer a wrong name with a did-you-mean; editors get the list.
  runtime: z
    .string()
    .optional()
    .meta({ enum: [...RUNTIME_NAMES], description: "Runtime used when --runtime is not given (default perstack; local is the same)." }),
  model: z.string().min(1).optional().describe("Model, unless --model is given (default: the runtime's own)."),
  reasoningBudget: reasoningBudget.optional().describe("Reasoning effort: none, minimal, low, medium, high, or a token budget."),
  maxSteps: z.number().int().positive().optional().describe("Most steps a job may take (default 100)."),
  maxRetries: z.number().int().min(0).optional().describe("Retries of a failed generation (default 5)."),
  timeout: z.number().int().positive().optional().describe("Milliseconds allowed per generation (default 300000)."),
  envPath: z
    .array(z.string())
    .optional()
    .describe("Env files read for variable values, relative to this file (default [\".env\", \".env.local\"]). Put it above [provider]."),
  provider: providerSchema.optional().describe("The model provider; its key comes from the environment."),
  experts: z
    .record(z.string().regex(EXPERT_KEY, { error: "is not a valid expert key" }), expertSchema)
    .optional()
    .describe("Experts by key: lowercase letters, digits, - and _, optionally scoped (@team/name)."),
  // Accepted by Perstack; parsed and warned about.
  perstackApiBaseUrl: z.string().optional(),
  perstackBaseSkillCommand: z.unknown().optional(),
});
export type PerstackConfigFile = z.infer<typeof perstackConfigSchema>;

/** Keys Perstack accepts that this project parses but does not act on yet, by the object they appear in. */
export const PERSTACK_ONLY_KEYS = {
  top: ["perstackApiBaseUrl", "perstackBaseSkillCommand"],
  expert: ["minRuntimeVersion", "providerTools", "providerSkills", "providerToolOptions"],
  stdioSkill: ["lazyInit"],
  setting: ["name", "useDeploymentBasedUrls"],
} as const;

export const SKILL_TYPES = ["mcpStdioSkill", "mcpSseSkill", "interactiveSkill"] as const;

export const PROVIDER_SETTING_KEYS = Object.fromEntries(
  providerSchemas.map((p) => [p.shape.providerName.value, Object.keys(p.shape.setting.unwrap().shape)]),
) as Record<ProviderName, string[]>;

/** The keys each kind of object accepts, for "did you mean" suggestions. */
export const KNOWN_KEYS = {
  top: Object.keys(perstackConfigSchema.shape),
  provider: ["providerName", "setting"],
  setting: [...new Set(providerSchemas.flatMap((p) => Object.keys(p.shape.setting.unwrap().shape)))],
  expert: Object.keys(expertSchema.shape),
  mcpStdioSkill: [...Object.keys(mcpStdioSkillSchema.shape)],
  mcpSseSkill: Object.keys(mcpSseSkillSchema.shape),
  interactiveSkill: Object.keys(interactiveSkillSchema.shape),
  tool: ["description", "inputJsonSchema"],
} as const;

export const DEFAULTS = {
  model: "claude-sonnet-4-5",
  maxSteps: 100,
  maxRetries: 5,
  timeout: 300_000,
  envPath: [".env", ".env.local"],
  runtime: "perstack" as RuntimeName,
} as const;
