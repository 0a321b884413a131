// A realistic Comparison for the report tests: one bug-fix Expert on four runtimes, two repeats each, a check, one
// runtime skipped, workspace diffs and egress. Everything that came out of a sandbox carries hostile text (markup,
// Handlebars syntax, quotes) exactly where a prompt-injected agent could put it: answers, tool arguments, file
// paths, diff lines, domains, check output, errors. No URL appears anywhere, so the report's own "nothing points
// at the network" assertion stays meaningful.
import type {
  CheckResult,
  Comparison,
  ComparisonRun,
  ComparisonUsage,
  CostSource,
  EgressDecision,
  RuntimeSummary,
  TimelineCall,
  WorkspaceChanges,
} from "../../../src/compare/comparison.js";
import { runtimeSummaries } from "../../../src/compare/comparison-build.js";

export const HOSTILE = `</script><img src=x onerror=alert(1)>`;
export const HANDLEBARS = "{{x}}";
export const HOSTILE_PATH = `src/"><img src=x onerror=alert(1)>{{x}}.ts`;

const CHECK_COMMAND = "npm test -- --run test/date.test.ts";

function usage(input: number, output: number, cached: number): ComparisonUsage {
  return { inputTokens: input, outputTokens: output, cachedInputTokens: cached, reasoningTokens: 0, totalTokens: input + output };
}

function check(passed: boolean, durationMs: number): CheckResult {
  return {
    command: CHECK_COMMAND,
    passed,
    exitCode: passed ? 0 : 1,
    timedOut: false,
    durationMs,
    outputTail: passed
      ? ` ✓ test/date.test.ts (6 tests) 41ms\n\n Test Files  1 passed (1)\n      Tests  6 passed (6)\n   Duration  612ms`
      : ` ❯ test/date.test.ts (6 tests | 1 failed) 44ms\n   × parses an ISO week date\n     → expected '2026-W01' to be '2025-12-29' ${HOSTILE}\n\n Test Files  1 failed (1)\n      Tests  1 failed | 5 passed (6)`,
  };
}

const FIX_PATCH = [
  "diff --git a/src/date.ts b/src/date.ts",
  "index 3b18e51..a9c4f02 100644",
  "--- a/src/date.ts",
  "+++ b/src/date.ts",
  "@@ -12,9 +12,12 @@ export function parseIsoDate(text: string): Date {",
  "   const match = ISO_DATE.exec(text);",
  "   if (!match) throw new RangeError(`not an ISO date: ${text}`);",
  "   const [, year, month, day] = match;",
  "-  // Months are 1-based in the text and in Date.UTC.",
  "-  return new Date(Date.UTC(Number(year), Number(month), Number(day)));",
  "+  // Date.UTC counts months from 0; the text counts them from 1.",
  "+  return new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));",
  " }",
  "+",
  "+// Week dates (2026-W01-1) are not calendar dates: refuse them rather than guess.",
  "+export const ISO_WEEK = /^\\d{4}-W\\d{2}(-\\d)?$/;",
  " ",
  " export function formatIsoDate(date: Date): string {",
  "   return date.toISOString().slice(0, 10);",
  "diff --git a/test/date.test.ts b/test/date.test.ts",
  "index 55d0c1a..8e2b7d3 100644",
  "--- a/test/date.test.ts",
  "+++ b/test/date.test.ts",
  "@@ -30,3 +30,7 @@ describe(\"parseIsoDate\", () => {",
  "   it(\"round-trips\", () => {",
  "     expect(formatIsoDate(parseIsoDate(\"2026-03-12\"))).toBe(\"2026-03-12\");",
  "   });",
  "+",
  "+  it(\"rejects week dates\", () => {",
  "+    expect(() => parseIsoDate(\"2026-W01-1\")).toThrow(RangeError);",
  "+  });",
  "",
].join("\n");

/** A hostile file the agent created: its name and every line of it are markup and template syntax. */
const HOSTILE_FILE_PATCH = [
  `diff --git a/${HOSTILE_PATH} b/${HOSTILE_PATH}`,
  "new file mode 100644",
  "index 0000000..5d1c0aa",
  "--- /dev/null",
  `+++ b/${HOSTILE_PATH}`,
  "@@ -0,0 +1,3 @@",
  `+// ${HOSTILE}`,
  `+export const template = "${HANDLEBARS} {{{raw}}} {{> partial}}";`,
  `+export const closing = "</pre></details></section>";`,
  "\\ No newline at end of file",
  "",
].join("\n");

function changes(withHostileFile: boolean): WorkspaceChanges {
  const files: WorkspaceChanges["files"] = [
    { path: "src/date.ts", status: "modified", kind: "text", bytesBefore: 1840, bytesAfter: 1977, added: 5, removed: 2 },
    { path: "test/date.test.ts", status: "modified", kind: "text", bytesBefore: 1203, bytesAfter: 1334, added: 4, removed: 0 },
  ];
  if (!withHostileFile) return { files, patch: FIX_PATCH, patchTruncated: false };
  return {
    files: [
      ...files,
      { path: HOSTILE_PATH, status: "added", kind: "text", bytesAfter: 131, added: 3, removed: 0 },
      { path: "coverage/lcov-report.zip", status: "added", kind: "binary", bytesAfter: 48_213 },
      { path: "notes/old-plan.md", status: "deleted", kind: "text", bytesBefore: 312, added: 0, removed: 9 },
    ],
    patch: FIX_PATCH + HOSTILE_FILE_PATCH,
    patchTruncated: false,
  };
}

function timeline(runtime: string, native: Record<string, string>): TimelineCall[] {
  const call = (atMs: number, name: string, args: object, extra: Partial<TimelineCall> = {}): TimelineCall => ({
    atMs,
    name,
    ...(native[name] && native[name] !== name && { nativeName: native[name] }),
    args: JSON.stringify(args),
    ...extra,
  });
  return [
    call(1_850, "readTextFile", { path: "src/date.ts" }),
    call(4_120, "exec", { command: "npm", args: ["test", "--", "--run", "test/date.test.ts"] }, { failed: true }),
    call(9_400, "readTextFile", { path: "test/date.test.ts" }),
    call(15_020, "editTextFile", { path: "src/date.ts", oldText: "Number(month)", newText: "Number(month) - 1" }),
    call(21_700, "exec", { command: "sh", args: ["-c", `echo '${HOSTILE}' ${HANDLEBARS}`] }),
    call(26_300, "writeTextFile", { path: HOSTILE_PATH, text: `// ${HOSTILE}\n${HANDLEBARS}` }),
    call(31_950, "search_issues", { query: `date parser ${HANDLEBARS}` }, { skillName: "github" }),
    call(38_400, "exec", { command: "npm", args: ["test", "--", "--run"] }),
  ].filter((_, index) => runtime !== "gemini" || index !== 6);
}

const EGRESS: EgressDecision[] = [
  { action: "allowed", domain: "registry.npmjs.org", port: 443, count: 14 },
  { action: "allowed", domain: "api.github.com", port: 443, count: 3 },
  { action: "blocked", domain: "telemetry.example.net", port: 443, count: 2 },
  { action: "blocked", domain: `evil.example"><img src=x onerror=alert(1)>`, port: 443, count: 1 },
];

interface RunSpec {
  runtime: string;
  repeat: number;
  status?: string;
  error?: string;
  model: string;
  provider: string;
  wallTimeMs: number;
  steps: number;
  tokens: [input: number, output: number, cached: number];
  costUsd: number | null;
  costSource: CostSource;
  retries?: number;
  passed: boolean;
  hostileFile?: boolean;
  blocked?: boolean;
  native: Record<string, string>;
}

const CLAUDE_NAMES = { readTextFile: "Read", exec: "Bash", editTextFile: "Edit", writeTextFile: "Write" };
const GEMINI_NAMES = { readTextFile: "read_file", exec: "run_shell_command", editTextFile: "replace", writeTextFile: "write_file" };
const CODEX_NAMES = { readTextFile: "shell", exec: "shell", editTextFile: "apply_patch", writeTextFile: "apply_patch" };

function run(spec: RunSpec): ComparisonRun {
  const calls = timeline(spec.runtime, spec.native);
  const toolCalls: Record<string, number> = {};
  for (const c of calls) toolCalls[c.name] = (toolCalls[c.name] ?? 0) + 1;
  const egress = spec.blocked ? EGRESS : EGRESS.filter((d) => d.action === "allowed");
  const [input, output, cached] = spec.tokens;
  const metered = spec.costSource === "metered" || spec.costSource === "none";
  return {
    runtime: spec.runtime,
    repeat: spec.repeat,
    jobId: `job-${spec.runtime}-${spec.repeat + 1}-7c1e`,
    status: spec.status ?? "completed",
    ...(spec.error && { error: spec.error }),
    model: spec.model,
    provider: spec.provider,
    wallTimeMs: spec.wallTimeMs,
    steps: spec.steps,
    toolCalls,
    toolCallCount: calls.length,
    ...(metered && {
      metered: {
        requests: spec.steps,
        usage: { ...usage(input, output, cached), cacheWriteTokens: Math.round(input * 0.05) },
        costUsd: spec.costUsd,
      },
    }),
    selfReported: { usage: usage(input, output, cached), ...(spec.costSource === "self-reported" && spec.costUsd !== null && { costUsd: spec.costUsd }) },
    costUsd: spec.costUsd,
    costSource: spec.costSource,
    retries: spec.retries ?? 0,
    blockedEgress: egress.filter((d) => d.action === "blocked").reduce((sum, d) => sum + d.count, 0),
    egress,
    timeline: calls,
    timelineTruncated: spec.runtime === "claude-code" && spec.repeat === 1 ? 37 : 0,
    finalAnswer:
      spec.status === "stoppedByError"
        ? undefined
        : `The month was off by one: \`Date.UTC\` counts months from 0, the parser passed the 1-based month.\n\nI fixed it in src/date.ts and added a test that week dates are refused.\n\n${HOSTILE} ${HANDLEBARS} & "quotes" 'too'`,
    check: check(spec.passed, 1_400 + spec.repeat * 90),
    changes: changes(spec.hostileFile ?? false),
    workspaceDir: `runs/${spec.runtime}-${spec.repeat + 1}/workspace`,
  };
}

export const FIXTURE_RUNS: ComparisonRun[] = [
  run({ runtime: "perstack", repeat: 0, model: "claude-sonnet-4-5", provider: "anthropic", wallTimeMs: 48_200, steps: 11, tokens: [58_400, 3_120, 41_000], costUsd: 0.0821, costSource: "metered", passed: true, native: {} }),
  run({ runtime: "perstack", repeat: 1, model: "claude-sonnet-4-5", provider: "anthropic", wallTimeMs: 55_900, steps: 13, tokens: [66_100, 3_480, 47_300], costUsd: 0.0937, costSource: "metered", passed: true, native: {}, blocked: true }),
  run({ runtime: "claude-code", repeat: 0, model: "claude-sonnet-4-5", provider: "anthropic", wallTimeMs: 71_400, steps: 17, tokens: [142_800, 4_050, 121_600], costUsd: 0.1264, costSource: "metered", passed: true, native: CLAUDE_NAMES }),
  run({ runtime: "claude-code", repeat: 1, model: "claude-sonnet-4-5", provider: "anthropic", wallTimeMs: 64_800, steps: 15, tokens: [131_500, 3_890, 112_000], costUsd: 0.1139, costSource: "metered", retries: 1, passed: true, native: CLAUDE_NAMES, hostileFile: true }),
  run({ runtime: "gemini", repeat: 0, model: "gemini-3-pro-preview", provider: "google", wallTimeMs: 39_700, steps: 9, tokens: [88_300, 2_210, 0], costUsd: null, costSource: "none", passed: true, native: GEMINI_NAMES }),
  run({ runtime: "gemini", repeat: 1, model: "gemini-3-pro-preview", provider: "google", wallTimeMs: 46_100, steps: 10, tokens: [93_900, 2_640, 30_200], costUsd: null, costSource: "none", passed: false, native: GEMINI_NAMES, blocked: true }),
  run({ runtime: "codex", repeat: 0, model: "gpt-5-codex", provider: "openai", wallTimeMs: 82_300, steps: 19, tokens: [104_200, 5_700, 76_800], costUsd: 0.0716, costSource: "metered", passed: true, native: CODEX_NAMES }),
  run({
    runtime: "codex",
    repeat: 1,
    status: "stoppedByError",
    error: `the agent exited with code 1: ${HOSTILE} ${HANDLEBARS}`,
    model: "gpt-5-codex",
    provider: "openai",
    wallTimeMs: 121_000,
    steps: 24,
    tokens: [151_000, 7_950, 102_400],
    costUsd: 0.1072,
    costSource: "metered",
    retries: 3,
    passed: false,
    native: CODEX_NAMES,
    blocked: true,
  }),
];

/** The summary compare computes from these runs (the real builder, so the fixture cannot drift from it). */
export function summarize(runs: ComparisonRun[]): RuntimeSummary[] {
  return runtimeSummaries([...new Set(runs.map((r) => r.runtime))], runs);
}

export function comparisonFixture(): Comparison {
  return {
    version: 1,
    id: "cmp-20260312-091500-4f2a",
    createdAt: Date.UTC(2026, 2, 12, 9, 15, 0),
    expertKey: "date-fixer",
    query: `Fix the failing date test in src/date.ts and explain the root cause. ${HANDLEBARS}`,
    runtimes: ["perstack", "claude-code", "gemini", "codex", "cursor"],
    repeat: 2,
    concurrency: 2,
    check: CHECK_COMMAND,
    fromJobs: false,
    runs: FIXTURE_RUNS,
    skipped: [{ runtime: "cursor", reason: "CURSOR_API_KEY is not set: cursor-agent has no gateway route and needs its own key" }],
    summary: summarize(FIXTURE_RUNS),
    provenance: {
      perstackVersion: "0.1.0",
      runtimes: [
        { runtime: "perstack", image: "perstack/agent-perstack:3f9c2a1d" },
        { runtime: "claude-code", cliPackage: "@anthropic-ai/claude-code", cliVersion: "2.1.4", image: "perstack/agent-claude-code:b81e07c4" },
        { runtime: "gemini", cliPackage: "@google/gemini-cli", cliVersion: "0.24.0", image: "perstack/agent-gemini:0d4471e9" },
        { runtime: "codex", cliPackage: "@openai/codex", cliVersion: "0.77.0", image: "perstack/agent-codex:5a2be913" },
      ],
      models: ["claude-sonnet-4-5", "gemini-3-pro-preview", "gpt-5-codex"],
      pricing: { source: "pricing/prices.json (shipped)", date: "2026-11-29", sha256: "9b1f6d0c2e7a4b3f8d5c1e0a9f7b6c4d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b" },
    },
    warnings: [
      "gemini: the price table has no entry for gemini-3-pro-preview, so its cost is n/a rather than a guess",
      `codex run 2 stopped with an error: the agent exited with code 1: ${HOSTILE}`,
    ],
  };
}
