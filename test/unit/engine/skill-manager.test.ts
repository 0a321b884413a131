import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createBaseSkillServer } from "../../../src/engine/base-skill/server.js";
import {
  INHERITED_ENV_VARS,
  SkillManager,
  SkillStartError,
  type SkillSpec,
  type StdioSkillSpec,
  type SkillManagerOptions,
} from "../../../src/engine/skills/skill-manager.js";
import type { RuntimeEvent } from "../../../src/model/perstack.js";

const ROOT = resolve(import.meta.dirname, "../../..");
const BASE_SKILL_JS = join(ROOT, "dist/src/engine/base-skill/server.js");
const SDK_ESM = join(ROOT, "node_modules/@modelcontextprotocol/sdk/dist/esm");

const PERSTACK_TOOL_NAMES = [
  "readTextFile", "writeTextFile", "appendTextFile", "editTextFile", "listDirectory", "getFileInfo", "createDirectory",
  "deleteFile", "deleteDirectory", "moveFile", "readImageFile", "readPdfFile", "exec", "todo", "clearTodo",
  "healthCheck", "attemptCompletion",
];

/** A tiny stdio MCP server: argv = label, tool names. Logs to stderr; tool "die" exits mid-call. */
const TINY_SERVER = `
import { McpServer } from ${JSON.stringify(pathToFileURL(join(SDK_ESM, "server/mcp.js")).href)};
import { StdioServerTransport } from ${JSON.stringify(pathToFileURL(join(SDK_ESM, "server/stdio.js")).href)};
const [label, ...tools] = process.argv.slice(2);
process.stderr.write(label + " starting\\r\\nsecond line\\n\\npartial");
process.stderr.write(" line\\n");
const server = new McpServer({ name: label, version: "0.0.0" });
for (const tool of tools) {
  server.registerTool(tool, { description: tool + " of " + label }, async () => {
    if (tool === "die") process.exit(3);
    process.stderr.write(label + " called " + tool + "\\n");
    return { content: [{ type: "text", text: label + ":" + tool }] };
  });
}
await server.connect(new StdioServerTransport());
`;

let dir: string;
let ws: string;
let tinyServer: string;
let events: RuntimeEvent[];
let managers: SkillManager[];
let eventCounter = 0;

beforeAll(() => {
  // `npm test` builds first; a bare `vitest run` may not have.
  if (!existsSync(BASE_SKILL_JS)) {
    execFileSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: ROOT });
  }
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "skill-manager-"));
  ws = join(dir, "workspace");
  mkdirSync(ws);
  tinyServer = join(dir, "tiny-server.mjs");
  writeFileSync(tinyServer, TINY_SERVER);
  events = [];
  managers = [];
});

afterEach(async () => {
  for (const m of managers) await m.close();
  rmSync(dir, { recursive: true, force: true });
});

function baseSkill(overrides: Partial<StdioSkillSpec> = {}): StdioSkillSpec {
  return {
    name: "base",
    transport: "stdio",
    command: process.execPath,
    args: [BASE_SKILL_JS],
    env: { PERSTACK_WORKSPACE: ws },
    ...overrides,
  };
}

function tiny(name: string, tools: string[], overrides: Partial<StdioSkillSpec> = {}): StdioSkillSpec {
  return { name, transport: "stdio", command: process.execPath, args: [tinyServer, name, ...tools], env: {}, ...overrides };
}

function manager(skills: SkillSpec[], gate: Pick<SkillManagerOptions, "networkReady" | "isLocal"> = {}): SkillManager {
  const m = new SkillManager({
    skills,
    ...gate,
    emit: (event) => events.push(event),
    eventBase: () => ({ id: `e${++eventCounter}`, timestamp: Date.now(), jobId: "job1", runId: "run1" }),
    connectTimeoutMs: 30_000,
  });
  managers.push(m);
  return m;
}

function text(result: CallToolResult): string {
  return result.content.map((c) => (c.type === "text" ? c.text : "")).join("");
}

function eventsOf(type: RuntimeEvent["type"], skillName?: string): RuntimeEvent[] {
  return events.filter((e) => e.type === type && (skillName === undefined || ("skillName" in e && e.skillName === skillName)));
}

describe("SkillManager before the sandbox's way out is up", () => {
  it("starts local skills at once; any other waits for networkReady before it is even spawned", async () => {
    let open: () => void = () => {};
    const networkReady = new Promise<void>((resolve) => {
      open = resolve;
    });
    const m = manager([baseSkill(), tiny("remote", ["ping"])], { networkReady, isLocal: (spec) => spec.name === "base" });
    const started = m.start();
    await vi.waitFor(() => expect(eventsOf("skillConnected", "base")).toHaveLength(1), { timeout: 20_000 });
    // The base skill is up; the other has not begun.
    expect(eventsOf("skillStarting", "remote")).toHaveLength(0);
    open();
    await started;
    expect(eventsOf("skillConnected", "remote")).toHaveLength(1);
  });
});

describe("SkillManager over stdio with the base skill", () => {
  it("connects, lists the 17 base tools and emits skillStarting before skillConnected", async () => {
    const m = manager([baseSkill()]);
    expect(await m.start()).toEqual([]);
    expect(m.tools().map((t) => t.name).sort()).toEqual([...PERSTACK_TOOL_NAMES].sort());
    expect(m.tools().every((t) => t.skillName === "base" && t.name === t.toolName)).toBe(true);
    const types = events.map((e) => e.type);
    expect(types.indexOf("skillStarting")).toBeLessThan(types.indexOf("skillConnected"));
    expect(events[0]).toMatchObject({ type: "skillStarting", skillName: "base", jobId: "job1", runId: "run1" });
    expect(events[0]?.id).toMatch(/^e\d+$/);
  });

  it("a call to writeTextFile creates the file in the workspace", async () => {
    const m = manager([baseSkill()]);
    await m.start();
    const result = await m.call("writeTextFile", { path: "hello.txt", text: "hi there" });
    expect(result.isError, text(result)).toBeFalsy();
    expect(readFileSync(join(ws, "hello.txt"), "utf8")).toBe("hi there");
  });

  it("pick keeps only the named tools and warns about unknown names", async () => {
    const m = manager([baseSkill({ pick: ["readTextFile", "exec", "noSuchTool"] })]);
    const warnings = await m.start();
    expect(m.tools().map((t) => t.name).sort()).toEqual(["exec", "readTextFile"]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/"base".*pick.*"noSuchTool"/);
    expect(m.warnings()).toEqual(warnings);
  });

  it("omit drops the named tools and warns about unknown names", async () => {
    const m = manager([baseSkill({ omit: ["exec", "deleteDirectory", "bogus"] })]);
    const warnings = await m.start();
    const names = m.tools().map((t) => t.name);
    expect(names).toHaveLength(15);
    expect(names).not.toContain("exec");
    expect(names).not.toContain("deleteDirectory");
    expect(warnings).toEqual([expect.stringMatching(/"base".*omit.*"bogus"/)]);
  });

  it("a filtered-out tool cannot be called", async () => {
    const m = manager([baseSkill({ omit: ["exec"] })]);
    await m.start();
    const result = await m.call("exec", { command: "true" });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/Unknown tool "exec"/);
  });

  it("passes the server exactly the given env plus the SDK's inherited variables, not process.env", async () => {
    process.env.SKILL_MANAGER_TEST_LEAK = "must-not-leak";
    try {
      const given = { PERSTACK_WORKSPACE: ws, SKILL_TOKEN: "abc123", HTTPS_PROXY: "http://proxy:3128" };
      const m = manager([baseSkill({ env: given })]);
      await m.start();
      const result = await m.call("exec", { command: "env" });
      expect(result.isError, text(result)).toBeFalsy();
      const seen = new Map<string, string>();
      for (const line of text(result).split("\n")) {
        const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
        if (match?.[1] !== undefined) seen.set(match[1], match[2] ?? "");
      }
      const inherited = INHERITED_ENV_VARS.filter((k) => process.env[k] !== undefined && !process.env[k]?.startsWith("()"));
      expect(inherited).toContain("PATH");
      expect([...seen.keys()].sort()).toEqual([...new Set([...Object.keys(given), ...inherited])].sort());
      for (const [k, v] of Object.entries(given)) expect(seen.get(k)).toBe(v);
      expect(seen.has("SKILL_MANAGER_TEST_LEAK")).toBe(false);
    } finally {
      delete process.env.SKILL_MANAGER_TEST_LEAK;
    }
  });

  it("close() emits skillDisconnected once per skill", async () => {
    const m = manager([baseSkill(), tiny("t", ["ping"])]);
    await m.start();
    await m.close();
    expect(eventsOf("skillDisconnected").map((e) => ("skillName" in e ? e.skillName : "")).sort()).toEqual(["base", "t"]);
    await m.close();
    expect(eventsOf("skillDisconnected")).toHaveLength(2);
    const result = await m.call("ping");
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/Skill "t" is not connected/);
  });
});

describe("SkillManager with small stdio servers", () => {
  it("turns each stderr line into a skillStderr event", async () => {
    const m = manager([tiny("logger", ["ping"])]);
    await m.start();
    expect(text(await m.call("ping"))).toBe("logger:ping");
    await expect.poll(() => eventsOf("skillStderr", "logger").length).toBe(4);
    expect(eventsOf("skillStderr", "logger").map((e) => ("message" in e ? e.message : ""))).toEqual([
      "logger starting",
      "second line",
      "partial line",
      "logger called ping",
    ]);
  });

  it("qualifies duplicate tool names as <skill>__<tool> and routes calls to the right skill", async () => {
    const m = manager([tiny("alpha", ["echo", "onlyA"]), tiny("beta", ["echo", "onlyB"])]);
    await m.start();
    expect(m.tools().map((t) => t.name)).toEqual(["alpha__echo", "onlyA", "beta__echo", "onlyB"]);
    expect(m.resolve("beta__echo")).toMatchObject({ skillName: "beta", toolName: "echo" });
    expect(text(await m.call("alpha__echo"))).toBe("alpha:echo");
    expect(text(await m.call("beta__echo"))).toBe("beta:echo");
    expect(text(await m.call("onlyB"))).toBe("beta:onlyB");
    expect((await m.call("echo")).isError).toBe(true);
  });

  it("does not qualify a name whose duplicate was filtered out", async () => {
    const m = manager([tiny("alpha", ["echo"]), tiny("beta", ["echo", "other"], { omit: ["echo"] })]);
    await m.start();
    expect(m.tools().map((t) => t.name)).toEqual(["echo", "other"]);
  });

  it("a server dying mid-call becomes an isError result naming the skill, and skillDisconnected", async () => {
    const m = manager([tiny("fragile", ["die"])]);
    await m.start();
    const result = await m.call("die");
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/Skill "fragile" failed to run tool "die"/);
    await expect.poll(() => eventsOf("skillDisconnected", "fragile").length).toBe(1);
  });

  it("a command that does not exist fails with an error naming the skill and command, closing the others", async () => {
    const m = manager([
      baseSkill(),
      { name: "broken", transport: "stdio", command: "/nonexistent/mcp-server", args: ["--flag"], env: {} },
    ]);
    const error = await m.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SkillStartError);
    expect((error as Error).message).toMatch(/Skill "broken" failed to start \(command "\/nonexistent\/mcp-server --flag"\)/);
    expect(eventsOf("skillConnected", "broken")).toHaveLength(0);
    expect(eventsOf("skillDisconnected", "base")).toHaveLength(1);
  });

  it("a server that exits at start quotes its stderr in the error", async () => {
    const m = manager([
      { name: "crasher", transport: "stdio", command: process.execPath, args: ["-e", "console.error('no API key'); process.exit(2)"], env: {} },
    ]);
    await expect(m.start()).rejects.toThrow(/Skill "crasher" failed to start \(command .*\):[\s\S]*no API key/);
  });

  it("rejects the same skill name twice", () => {
    expect(() => manager([tiny("a", ["x"]), tiny("a", ["y"])])).toThrow(/"a" is listed twice/);
  });
});

describe("SkillManager over SSE", () => {
  let http: Server;
  let url: string;

  beforeAll(async () => {
    const transports = new Map<string, SSEServerTransport>();
    http = createServer((req, res) => {
      const u = new URL(req.url ?? "/", "http://localhost");
      if (req.method === "GET" && u.pathname === "/sse") {
        const transport = new SSEServerTransport("/messages", res);
        transports.set(transport.sessionId, transport);
        void createBaseSkillServer({ root: ws }).connect(transport);
      } else if (req.method === "POST" && u.pathname === "/messages") {
        const transport = transports.get(u.searchParams.get("sessionId") ?? "");
        if (transport) void transport.handlePostMessage(req, res);
        else res.writeHead(404).end();
      } else res.writeHead(404).end();
    });
    await new Promise<void>((ready) => http.listen(0, "127.0.0.1", ready));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/sse`;
  });

  afterAll(async () => {
    http.closeAllConnections();
    await new Promise((done) => http.close(done));
  });

  it("connects an SSE skill alongside a stdio one, qualifying the shared tool names", async () => {
    const m = manager([{ name: "remote", transport: "sse", url, pick: ["healthCheck", "listDirectory"] }, tiny("local", ["healthCheck"])]);
    await m.start();
    expect(m.tools().map((t) => t.name)).toEqual(["listDirectory", "remote__healthCheck", "local__healthCheck"]);
    const result = await m.call("remote__healthCheck");
    expect(result.isError, text(result)).toBeFalsy();
    expect(eventsOf("skillConnected", "remote")).toHaveLength(1);
    await m.close();
    expect(eventsOf("skillDisconnected", "remote")).toHaveLength(1);
  });

  it("an unreachable SSE endpoint fails with an error naming the skill and URL", async () => {
    const m = manager([{ name: "gone", transport: "sse", url: "http://127.0.0.1:1/sse" }]);
    await expect(m.start()).rejects.toThrow(/Skill "gone" failed to start \(SSE endpoint http:\/\/127\.0\.0\.1:1\/sse\)/);
  });
});
