import { Command, CommanderError } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { logQueryFromOptions, registerLogCommand, runLogCommand, type LogCommandOptions } from "../../../src/cli/log-command.js";
import { InvalidOptionError } from "../../../src/errors.js";
import { capturedIo, checkpoint, ev, multiRunJob, perstackDir, writeJob } from "../history/job-fixtures.js";

const io = capturedIo;

function fixtureDir(): string {
  const dir = perstackDir();
  writeJob(dir, multiRunJob());
  return dir;
}

// Escape sequences an agent could put in its output: a clipboard write (OSC 52), an 8-bit CSI, a bidi override.
const HOSTILE = "pwned\u001b]52;c;ZWNobyBoaQ==\u0007 \u009b31m red \u202eevil";
// eslint-disable-next-line no-control-regex -- control characters are what this is about
const UNSAFE = /[\u001b\u0007\u009b\u202e]/;

describe("perstack log command", () => {
  afterEach(() => vi.restoreAllMocks());

  it("maps the flags onto a query: presets and --type add up, Perstack's default take, paging numbers", () => {
    const query = logQueryFromOptions({ job: "j", run: "r", checkpoint: "c", step: ">2", type: "retry", tools: true, filter: ".a == 1", take: 0, offset: 3, context: 2, messages: true });
    expect(query).toMatchObject({ jobId: "j", runId: "r", checkpointId: "c", selector: { steps: { min: 3, max: Number.POSITIVE_INFINITY } }, paging: { take: 0, offset: 3, context: 2 }, messages: true });
    expect(new Set(query.selector.types)).toEqual(new Set(["retry", "callTools", "resolveToolResults", "callInteractiveTool"]));
    expect(query.selector.filter?.path).toBe(".a");
    expect(logQueryFromOptions({}).paging).toEqual({ take: 100, offset: 0, context: 0 });
    expect(logQueryFromOptions({}).selector).toEqual({});
  });

  it.each<[LogCommandOptions, string]>([
    [{ step: "x" }, '--step "x": give a step (5), a bound (>5, >=5, <5, <=5) or a range (1-10)'],
    [{ filter: "toolName == 1" }, '--filter "toolName == 1": start with "."'],
    [{ type: "callTool" }, '--type "callTool": not an event type; did you mean callTools?'],
  ])("bad %j is one error naming the flag (exit 2)", async (options, message) => {
    const run = runLogCommand(options, io(fixtureDir()));
    await expect(run).rejects.toThrow(InvalidOptionError);
    await expect(runLogCommand(options, io(fixtureDir()))).rejects.toThrow(message);
    expect(new InvalidOptionError("x").exitCode).toBe(2);
  });

  it("--messages with --summary is refused", async () => {
    await expect(runLogCommand({ messages: true, summary: true }, io(fixtureDir()))).rejects.toThrow("--messages and --summary are two views of a job; give one of them");
  });

  it("--json prints one JSON object; what was skipped goes to stderr as warnings", async () => {
    const dir = fixtureDir();
    const out = io(dir);
    expect(await runLogCommand({ json: true }, out)).toBe(0);
    const parsed = JSON.parse(out.out) as { job: { id: string }; events: unknown[]; isLatestJob: boolean };
    expect(parsed.job.id).toBe("job1");
    expect(parsed.events).toHaveLength(18);
    expect(out.out.trimEnd().split("\n")).toHaveLength(1);
    expect(out.err).toBe("perstack: warning: skipped 2 line(s) of runs/r1/events.jsonl that are not events\n");
    const pretty = io(dir);
    await runLogCommand({ pretty: true }, pretty);
    expect(JSON.parse(pretty.out)).toEqual(parsed);
    expect(pretty.out.split("\n").length).toBeGreaterThan(100);
  });

  it("no jobs: says where they would be and how to start one", async () => {
    const out = io(perstackDir());
    expect(await runLogCommand({}, out)).toBe(0);
    expect(out.out).toBe("");
    expect(out.err).toMatch(/^perstack: no jobs in .*perstack\/jobs yet; start one with `perstack run <expert> "<query>"`\n$/);
  });

  it("text from the sandbox reaches the terminal without escape sequences; JSON keeps it exactly, escaped", async () => {
    const dir = perstackDir();
    writeJob(dir, {
      job: { id: "hostile", coordinatorExpertKey: HOSTILE },
      runs: { r: [ev("completeRun", "r", 5, { expertKey: "lead", stepNumber: 1, text: HOSTILE, checkpoint: checkpoint("c", "r", "lead", "completed", 1) })] },
    });
    const text = io(dir);
    await runLogCommand({ verbose: true }, text);
    expect(text.out).toContain("pwned");
    expect(text.out).not.toMatch(UNSAFE);
    const json = io(dir);
    await runLogCommand({ json: true }, json);
    expect(json.out).not.toMatch(UNSAFE);
    const parsed = JSON.parse(json.out) as { job: { coordinatorExpertKey: string }; events: Array<{ text: string }> };
    expect(parsed.job.coordinatorExpertKey).toBe(HOSTILE);
    expect(parsed.events[0]!.text).toBe(HOSTILE);
  });

  it("registered with commander: bad numbers are commander errors (exit 2); the program's --verbose reaches the view", async () => {
    const dir = fixtureDir();
    const program = () => {
      const p = new Command("perstack").option("--verbose").exitOverride();
      registerLogCommand(p);
      for (const sub of p.commands) sub.exitOverride().configureOutput({ writeErr: () => undefined });
      return p;
    };
    await expect(program().parseAsync(["node", "perstack", "log", "--take", "-1"])).rejects.toThrow(CommanderError);
    await expect(program().parseAsync(["node", "perstack", "log", "--offset", "1.5"])).rejects.toThrow(/give a whole number, 0 or more/);

    let printed = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      printed += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    vi.stubEnv("PERSTACK_STORAGE_PATH", dir);
    try {
      await program().parseAsync(["node", "perstack", "log", "--tools", "--verbose", "--take", "1"]);
      expect(printed).toContain("      @perstack/base/writeTextFile\n        {\n");
      expect(printed).toContain("showing 1 of 4 matching events");
    } finally {
      vi.unstubAllEnvs();
      process.exitCode = undefined;
    }
  });
});
