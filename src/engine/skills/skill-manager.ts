// Connects an expert's MCP skills (stdio and SSE) with the official SDK Client, merges their tools into one
// uniquely named set, routes tool calls, and reports the skill lifecycle as Perstack runtime events.
import type { Stream } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { DEFAULT_INHERITED_ENV_VARS, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { RuntimeEvent, RuntimeEventBase } from "../../model/perstack.js";

/** Separator between skill and tool name when two skills expose a tool of the same name. */
export const QUALIFIED_TOOL_SEPARATOR = "__";
/** How long a skill may take to spawn/accept and answer `initialize` (and the first tools/list). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
/** How many of a failed stdio server's last stderr lines the start error quotes. */
const STDERR_TAIL_LINES = 10;

/**
 * Environment variables the SDK's StdioClientTransport always copies from this process into a stdio server (its
 * `getDefaultEnvironment()`: on POSIX HOME, LOGNAME, PATH, SHELL, TERM, USER, each only when set and not a shell
 * function). Everything else a stdio server sees is the `env` the caller gives, which wins over these.
 */
export const INHERITED_ENV_VARS: readonly string[] = DEFAULT_INHERITED_ENV_VARS;

interface SkillFilter {
  /** Only these tools (unknown names become warnings). */
  pick?: string[];
  /** All tools but these (unknown names become warnings). */
  omit?: string[];
}

export interface StdioSkillSpec extends SkillFilter {
  name: string;
  transport: "stdio";
  command: string;
  args: string[];
  /**
   * The server's whole environment apart from INHERITED_ENV_VARS: the skill's requiredEnv values and the proxy
   * variables. The process environment is NOT passed through.
   */
  env: Record<string, string>;
  cwd?: string;
}

export interface SseSkillSpec extends SkillFilter {
  name: string;
  transport: "sse";
  url: string;
}

/**
 * A server that runs in this process (the built-in base skill): no second Node process to start, which was a good
 * part of a run's start-up. `serve` connects the server to the transport it is given (the other end of the client's).
 */
export interface InProcessSkillSpec extends SkillFilter {
  name: string;
  transport: "inProcess";
  serve(transport: Transport): Promise<void>;
}

export type SkillSpec = StdioSkillSpec | SseSkillSpec | InProcessSkillSpec;

/** Runtime events minus the fields the caller stamps (id, timestamp, jobId, runId). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type SkillEventBody = DistributiveOmit<RuntimeEvent, keyof RuntimeEventBase>;

export interface SkillManagerOptions {
  skills: SkillSpec[];
  /**
   * Resolves once the sandbox's way out (proxy, gateway) is up. A skill `isLocal` does not say is local waits for it
   * before it starts: it may fetch a package or call a service as it starts. Local ones start at once, while the host
   * is still starting the sidecars.
   */
  networkReady?: Promise<void>;
  isLocal?: (spec: SkillSpec) => boolean;
  /** Receives skillStarting, skillConnected, skillStderr and skillDisconnected events. */
  emit: (event: RuntimeEvent) => void;
  /** Supplies the id, timestamp, jobId and runId of each event. */
  eventBase: () => RuntimeEventBase;
  connectTimeoutMs?: number;
}

/** One tool as offered to the model: `name` is unique across all skills. */
export interface SkillTool {
  /** The exposed name: the tool's own name, or `<skill>__<tool>` when another skill has a tool of that name. */
  name: string;
  skillName: string;
  /** The tool's name on its MCP server. */
  toolName: string;
  description?: string;
  inputSchema: Tool["inputSchema"];
}

interface Connection {
  spec: SkillSpec;
  client: Client;
  /** False once closed by us or by the server going away. */
  connected: boolean;
  tools: Tool[];
}

export class SkillStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SkillStartError";
  }
}

export class SkillManager {
  private readonly options: SkillManagerOptions;
  private readonly connections = new Map<string, Connection>();
  private exposed = new Map<string, SkillTool>();
  private warningList: string[] = [];
  private started = false;

  constructor(options: SkillManagerOptions) {
    const seen = new Set<string>();
    for (const skill of options.skills) {
      if (seen.has(skill.name)) throw new Error(`skill "${skill.name}" is listed twice`);
      seen.add(skill.name);
    }
    this.options = options;
  }

  /**
   * Connects every skill concurrently. If any fails, the ones that did connect are closed again and a
   * SkillStartError names each failed skill and its command (or URL). Returns the pick/omit warnings.
   */
  async start(): Promise<string[]> {
    if (this.started) throw new Error("SkillManager.start() was already called");
    this.started = true;
    const outcomes = await Promise.allSettled(this.options.skills.map((spec) => this.connect(spec)));
    const failures = outcomes.flatMap((o) => (o.status === "rejected" ? [errorMessage(o.reason)] : []));
    if (failures.length > 0) {
      await this.close();
      throw new SkillStartError(failures.join("\n"));
    }
    this.buildToolIndex();
    return this.warnings();
  }

  /** The union of every skill's tools after pick/omit, with names unique across skills. */
  tools(): SkillTool[] {
    return [...this.exposed.values()];
  }

  /** Problems that did not stop the start, such as a pick/omit name the skill does not have. */
  warnings(): string[] {
    return [...this.warningList];
  }

  /** Which skill and original tool an exposed name stands for. */
  resolve(toolName: string): SkillTool | undefined {
    return this.exposed.get(toolName);
  }

  /**
   * Calls a tool by its exposed name. Never throws: an unknown tool, a disconnected skill or a transport/protocol
   * error comes back as an `isError` result naming the skill.
   */
  async call(toolName: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
    const tool = this.exposed.get(toolName);
    if (!tool) return errorResult(`Unknown tool "${toolName}". Available tools: ${[...this.exposed.keys()].join(", ")}`);
    const connection = this.connections.get(tool.skillName);
    if (!connection || !connection.connected) {
      return errorResult(`Skill "${tool.skillName}" is not connected; tool "${tool.toolName}" cannot be called.`);
    }
    try {
      const result = await connection.client.callTool({ name: tool.toolName, arguments: args });
      if ("content" in result && Array.isArray(result.content)) return result as CallToolResult;
      // Pre-2024-11-05 servers answer { toolResult }; present it as text.
      return { content: [{ type: "text", text: JSON.stringify((result as { toolResult?: unknown }).toolResult) }] };
    } catch (error) {
      return errorResult(`Skill "${tool.skillName}" failed to run tool "${tool.toolName}": ${errorMessage(error)}`);
    }
  }

  /** Closes every client; emits skillDisconnected for each skill that was still connected. */
  async close(): Promise<void> {
    const open = [...this.connections.values()];
    await Promise.all(
      open.map(async (connection) => {
        try {
          await connection.client.close();
        } catch {
          // Closing is best effort: the process or stream may already be gone.
        }
        this.markDisconnected(connection);
      }),
    );
  }

  private emit(body: SkillEventBody): void {
    this.options.emit({ ...this.options.eventBase(), ...body } as RuntimeEvent);
  }

  private markDisconnected(connection: Connection): void {
    if (!connection.connected) return;
    connection.connected = false;
    this.emit({ type: "skillDisconnected", skillName: connection.spec.name });
  }

  private async connect(spec: SkillSpec): Promise<void> {
    if (!this.options.isLocal?.(spec)) await this.options.networkReady;
    const skillName = spec.name;
    this.emit({ type: "skillStarting", skillName });
    const stderrTail: string[] = [];
    let transport: Transport;
    if (spec.transport === "stdio") {
      const stdio = new StdioClientTransport({
        command: spec.command,
        args: spec.args,
        // The SDK adds getDefaultEnvironment() (INHERITED_ENV_VARS) under this; nothing else of process.env.
        env: { ...spec.env },
        stderr: "pipe",
        ...(spec.cwd ? { cwd: spec.cwd } : {}),
      });
      // The PassThrough exists before start(), so early output (e.g. a crash message) is not lost.
      const stderr = stdio.stderr;
      if (stderr) {
        forEachLine(stderr, (line) => {
          stderrTail.push(line);
          if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
          this.emit({ type: "skillStderr", skillName, message: line });
        });
      }
      transport = stdio;
    } else if (spec.transport === "inProcess") {
      const [client, server] = InMemoryTransport.createLinkedPair();
      try {
        await spec.serve(server);
      } catch (error) {
        throw new SkillStartError(`Skill "${skillName}" failed to start (built in): ${errorMessage(error)}`);
      }
      transport = client;
    } else {
      let url: URL;
      try {
        url = new URL(spec.url);
      } catch {
        throw new SkillStartError(`Skill "${skillName}" failed to start: "${spec.url}" is not a URL`);
      }
      transport = new SSEClientTransport(url);
    }

    const client = new Client({ name: "perstack-runtime", version: "0.1.0" });
    const connection: Connection = { spec, client, connected: false, tools: [] };
    const timeout = this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    try {
      await client.connect(transport, { timeout });
      connection.tools = await listAllTools(client, timeout);
    } catch (error) {
      await client.close().catch(() => undefined);
      // Let the stderr stream drain so the message can quote why the server died.
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      const what = spec.transport === "stdio" ? `command ${describeCommand(spec)}` : spec.transport === "sse" ? `SSE endpoint ${spec.url}` : "built in";
      const tail = stderrTail.length > 0 ? `\n  stderr:\n    ${stderrTail.join("\n    ")}` : "";
      throw new SkillStartError(`Skill "${skillName}" failed to start (${what}): ${errorMessage(error)}${tail}`);
    }
    connection.connected = true;
    this.connections.set(skillName, connection);
    client.onclose = () => this.markDisconnected(connection);
    this.emit({ type: "skillConnected", skillName });
  }

  private buildToolIndex(): void {
    const warnings: string[] = [];
    const kept: Array<{ skillName: string; tool: Tool }> = [];
    // Declaration order, so the exposed tool list does not depend on which server answered first.
    for (const spec of this.options.skills) {
      const connection = this.connections.get(spec.name);
      if (!connection) continue;
      const available = new Set(connection.tools.map((t) => t.name));
      for (const [key, names] of [["pick", spec.pick], ["omit", spec.omit]] as const) {
        for (const name of names ?? []) {
          if (!available.has(name)) {
            warnings.push(
              `Skill "${spec.name}": ${key} names "${name}", which the skill does not have (tools: ${[...available].join(", ")})`,
            );
          }
        }
      }
      const pick = spec.pick ? new Set(spec.pick) : undefined;
      const omit = new Set(spec.omit ?? []);
      for (const tool of connection.tools) {
        if (pick && !pick.has(tool.name)) continue;
        if (omit.has(tool.name)) continue;
        kept.push({ skillName: spec.name, tool });
      }
    }
    const count = new Map<string, number>();
    for (const { tool } of kept) count.set(tool.name, (count.get(tool.name) ?? 0) + 1);
    const exposed = new Map<string, SkillTool>();
    for (const { skillName, tool } of kept) {
      let name = (count.get(tool.name) ?? 0) > 1 ? `${skillName}${QUALIFIED_TOOL_SEPARATOR}${tool.name}` : tool.name;
      if (exposed.has(name)) {
        // Only possible when a qualified name equals another tool's real name; keep both reachable.
        let n = 2;
        while (exposed.has(`${name}_${n}`)) n++;
        warnings.push(`Tool "${name}" of skill "${skillName}" clashes with another tool; exposed as "${name}_${n}"`);
        name = `${name}_${n}`;
      }
      exposed.set(name, {
        name,
        skillName,
        toolName: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        inputSchema: tool.inputSchema,
      });
    }
    this.exposed = exposed;
    this.warningList = warnings;
  }
}

async function listAllTools(client: Client, timeout: number): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined, { timeout });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

/** Calls `onLine` for each non-empty line of a stream (CRLF tolerated; a last unterminated line is flushed at end). */
function forEachLine(stream: Stream, onLine: (line: string) => void): void {
  let buffered = "";
  const deliver = (line: string) => {
    const trimmed = line.replace(/\r$/, "");
    if (trimmed.trim() !== "") onLine(trimmed);
  };
  stream.on("data", (chunk: Buffer | string) => {
    buffered += chunk.toString();
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      deliver(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
    }
  });
  stream.on("end", () => {
    if (buffered !== "") deliver(buffered);
    buffered = "";
  });
}

function describeCommand(spec: StdioSkillSpec): string {
  return JSON.stringify([spec.command, ...spec.args].join(" "));
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function errorResult(text: string): CallToolResult {
  return { content: [{ type: "text", text }], isError: true };
}
