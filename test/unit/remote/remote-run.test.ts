// `perstack run --server` (the built CLI) against a scripted stand-in for perstack serve, no Docker: the events it
// prints are the ones that pass the event schema and belong to the job (a forged one is refused with a warning, escape
// sequences never reach the terminal), --json prints them in Perstack's shape with the messages read from the
// checkpoint route, the exit code follows the job's final status, and the run's workspace is applied here unless the
// archive is unsafe (then nothing changes, exit 1).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonLines } from "../../support/perstack-e2e.js";
import { runCli } from "../../support/cli.js";
import { craftTar, type CraftedEntry, listTree, tempDir } from "../workspace/workspace-fixtures.js";

const JOB = "job1remote";
const RUN = "run1remote";
const USAGE = { inputTokens: 3, outputTokens: 2, reasoningTokens: 0, totalTokens: 5, cachedInputTokens: 0 };
const EXPERT = { key: "writer", name: "writer", version: "1.0.0" };

function checkpoint(status: string) {
  return { id: "cp1", jobId: JOB, runId: RUN, status, stepNumber: 1, expert: EXPERT, usage: USAGE };
}

const base = { jobId: JOB, runId: RUN, timestamp: 1_700_000_000_000 };
const EVENTS = [
  { ...base, id: "e1", type: "initializeRuntime", runtime: "perstack", model: "claude-sonnet-4-5" },
  { ...base, id: "e2", jobId: "someoneelse", type: "retry", expertKey: "writer", stepNumber: 1, reason: "forged" },
  { ...base, id: "e3", type: "retry", expertKey: "writer", stepNumber: 1, reason: "rate limited \u001b]0;pwned\u0007\u001b[2J \u009b31m\u202eagain" },
  { ...base, id: "e4", type: "completeRun", expertKey: "writer", stepNumber: 1, checkpoint: { ...checkpoint("completed"), messagesRef: { checkpointId: "cp1", count: 1 } }, text: "the answer", usage: USAGE },
];

/** What a terminal would act on: ESC, BEL, the one-byte CSI, a bidirectional override. */
const UNSAFE = ["\u001b", "\u0007", "\u009b", "\u202e"];

interface Script {
  status: string;
  archive: Buffer;
  /** The submission is taken but never answered (a slow network, a busy server). */
  holdSubmission?: boolean;
}

describe("perstack run --server against a stand-in server", () => {
  let server: Server;
  let url: string;
  let script: Script;
  const submissions: string[] = [];
  /** Each submission's Idempotency-Key header, and the keys cancelled by POST /v1/submissions/{key}/cancel. */
  const submissionKeys: Array<string | undefined> = [];
  const cancelledKeys: string[] = [];
  /** Resolved when a held submission has been received whole. */
  let submissionHeld: (() => void) | undefined;

  beforeAll(async () => {
    server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        const json = (status: number, value: unknown) => {
          response.writeHead(status, { "content-type": "application/json" });
          response.end(JSON.stringify(value));
        };
        const path = request.url ?? "";
        if (request.method === "POST" && path === "/v1/runs") {
          submissions.push(Buffer.concat(chunks).toString("latin1"));
          submissionKeys.push(request.headers["idempotency-key"] as string | undefined);
          if (script.holdSubmission) {
            submissionHeld?.();
            return;
          }
          return json(202, { jobId: JOB, status: "queued", position: 1 });
        }
        const cancelByKey = /^\/v1\/submissions\/([^/]+)\/cancel$/.exec(path);
        if (request.method === "POST" && cancelByKey) {
          cancelledKeys.push(decodeURIComponent(cancelByKey[1]!));
          return json(200, { status: "stopping", jobId: JOB });
        }
        if (path === `/v1/runs/${JOB}`) return json(200, { jobId: JOB, status: script.status, submittedAt: 1, startedAt: 2, finishedAt: 3, expert: "writer" });
        if (path === `/v1/runs/${JOB}/events`) {
          response.writeHead(200, { "content-type": "text/event-stream" });
          response.write(": connected\n\n");
          EVENTS.forEach((event, n) => response.write(`id: v1:${RUN}.${n + 1}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`));
          return response.end("event: end\ndata: {}\n\n");
        }
        if (path === `/v1/runs/${JOB}/checkpoints/cp1`) return json(200, { ...checkpoint("completed"), messages: [{ type: "userMessage", id: "m1", contents: [{ type: "textPart", text: "hi" }] }] });
        if (path === `/v1/runs/${JOB}/workspace`) {
          response.writeHead(200, { "content-type": "application/gzip" });
          return response.end(script.archive);
        }
        json(404, { error: { code: "not_found", message: "no such route" } });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  function workspace(): string {
    const dir = tempDir("perstack-remote-cli-");
    writeFileSync(join(dir, "perstack.toml"), '[experts."writer"]\ndescription = "Writes"\ninstruction = "Write."\n');
    writeFileSync(join(dir, "readme.txt"), "readme\n");
    writeFileSync(join(dir, ".env"), "ANTHROPIC_API_KEY=sk-never-sent\n");
    mkdirSync(join(dir, "perstack"));
    return dir;
  }

  /** The server's workspace: what was uploaded plus `extra` (a tar.gz as GET /workspace sends it). */
  const archiveOf = (extra: CraftedEntry[]) =>
    gzipSync(craftTar([{ name: "perstack.toml", type: "file", mode: 0o644, content: '[experts."writer"]\ndescription = "Writes"\ninstruction = "Write."\n' }, { name: "readme.txt", type: "file", mode: 0o644, content: "readme\n" }, ...extra]));

  const run = (args: string[], cwd: string) => runCli(["run", "writer", "go", ...args, "--server", url], { cwd, env: { PERSTACK_TOKEN: "pst_t_stand-in" }, timeoutMs: 60_000 });

  it("--json: the job's checked events in Perstack's shape; a forged one refused; the workspace applied; exit 0", async () => {
    script = { status: "completed", archive: archiveOf([{ name: "new.txt", type: "file", mode: 0o644, content: "made on the server\n" }]) };
    const dir = workspace();
    try {
      const result = await run(["--json"], dir);
      expect(result.exitCode, result.all).toBe(0);
      const printed = jsonLines(result.stdout);
      expect(printed.map((e) => e.id)).toEqual(["e1", "e3", "e4"]);
      // Control characters travel as JSON escapes: the same value, nothing a terminal acts on.
      expect(printed[1]!.reason).toBe((EVENTS[2] as { reason: string }).reason);
      for (const char of UNSAFE) expect(result.stdout).not.toContain(char);
      const complete = printed[2] as unknown as { checkpoint: { messages: unknown[]; messagesRef?: unknown } };
      expect(complete.checkpoint.messages).toHaveLength(1);
      expect(complete.checkpoint.messagesRef).toBeUndefined();
      expect(result.stderr).toContain(`perstack: warning: ignored an event from ${url}: event "retry" names job "someoneelse", not ${JOB}`);
      expect(readFileSync(join(dir, "new.txt"), "utf8")).toBe("made on the server\n");
      // The upload went as a form with the workspace as its file part.
      expect(submissions.at(-1)).toMatch(/name="workspace"; filename="workspace\.tar\.gz"/);
      expect(submissions.at(-1)).not.toContain("pst_t_stand-in");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("every submission names itself with a fresh Idempotency-Key", async () => {
    script = { status: "completed", archive: archiveOf([]) };
    const dir = workspace();
    try {
      const before = submissionKeys.length;
      for (let i = 0; i < 2; i++) expect((await run(["--json"], dir)).exitCode).toBe(0);
      const keys = submissionKeys.slice(before);
      expect(keys).toHaveLength(2);
      for (const key of keys) expect(key).toMatch(/^[0-9a-f]{32}$/);
      expect(keys[0]).not.toBe(keys[1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Ctrl-C while the server has the upload but has not answered: the submission is cancelled by its key, so nothing of it runs on", async () => {
    script = { status: "completed", archive: archiveOf([]), holdSubmission: true };
    const dir = workspace();
    try {
      const held = new Promise<void>((resolve) => (submissionHeld = resolve));
      const child = run([], dir);
      await held;
      child.kill("SIGINT");
      const result = await child;
      expect(result.exitCode, result.all).toBe(130);
      const key = submissionKeys.at(-1)!;
      expect(cancelledKeys).toContain(key);
      expect(result.stderr).toContain("stopping the submission");
      expect(result.stderr).toContain(`job ${JOB}: stopping on ${url}`);
    } finally {
      submissionHeld = undefined;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the live view: escape sequences from the server never reach the terminal; the job's status is the exit code", async () => {
    script = { status: "stoppedByError", archive: archiveOf([]) };
    const dir = workspace();
    try {
      const result = await run([], dir);
      expect(result.exitCode, result.all).toBe(1);
      expect(result.stdout).toContain("the answer");
      expect(result.all).toContain("↻ rate limited");
      for (const char of UNSAFE) expect(result.all).not.toContain(char);
      expect(result.stderr).toMatch(new RegExp(`job ${JOB}: stoppedByError · ${url.replace(/\./g, "\\.")}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an unsafe workspace archive changes nothing here: the run's changes are not copied back, exit 1", async () => {
    for (const extra of [[{ name: "../escaped.txt", type: "file", content: "out" }], [{ name: "link", type: "symlink", linkname: "/etc" }, { name: "link/passwd", type: "file", content: "x" }]] as CraftedEntry[][]) {
      script = { status: "completed", archive: archiveOf(extra) };
      const dir = workspace();
      try {
        const before = listTree(dir);
        const result = await run([], dir);
        expect(result.exitCode, result.all).toBe(1);
        expect(result.stderr).toMatch(/the agent's changes were not copied back \(your workspace is as before the run\): copy-back into .* refused: .*not safe to apply/);
        expect(listTree(dir).filter((e) => !e.path.startsWith("perstack"))).toEqual(before.filter((e) => !e.path.startsWith("perstack")));
        expect(existsSync(join(dir, "..", "escaped.txt"))).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
