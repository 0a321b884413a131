// Built-in tools of different CLIs that are the same concept, named as Perstack's base skill names them, so runs
// of one expert on several runtimes can be compared call by call. Events keep the native name and arguments;
// this is an added view (ToolCall.normalized), never a replacement.

export interface NormalizedTool {
  toolName: "exec" | "writeTextFile" | "readTextFile" | "editTextFile" | "listDirectory";
  args: Record<string, unknown>;
}

type Args = Record<string, unknown>;
const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);

/** codex runs commands as `bash -lc '<command>'` (or an argv array); the concept is the inner command. */
export function unwrapShell(command: unknown): string | undefined {
  if (Array.isArray(command)) {
    const argv = command.map(String);
    const shell = /(^|\/)(ba|z)?sh$/.test(argv[0] ?? "") && /^-l?c$/.test(argv[1] ?? "") && argv.length === 3;
    return shell ? argv[2] : argv.join(" ");
  }
  const text = str(command);
  if (text === undefined) return undefined;
  const match = /^(?:\/usr\/bin\/|\/bin\/)?(?:ba|z)?sh -l?c (['"])([\s\S]*)\1$/.exec(text.trim());
  return match ? match[2]!.replace(/'\\''/g, "'") : text;
}

const TABLE: Record<string, Record<string, (args: Args) => NormalizedTool | undefined>> = {
  "claude-code": {
    Bash: (a) => ({ toolName: "exec", args: { command: str(a.command) } }),
    Write: (a) => ({ toolName: "writeTextFile", args: { path: str(a.file_path), text: str(a.content) } }),
    Read: (a) => ({ toolName: "readTextFile", args: { path: str(a.file_path) } }),
    Edit: (a) => ({ toolName: "editTextFile", args: { path: str(a.file_path), oldText: str(a.old_string), newText: str(a.new_string) } }),
  },
  gemini: {
    run_shell_command: (a) => ({ toolName: "exec", args: { command: str(a.command) } }),
    write_file: (a) => ({ toolName: "writeTextFile", args: { path: str(a.file_path), text: str(a.content) } }),
    read_file: (a) => ({ toolName: "readTextFile", args: { path: str(a.absolute_path) ?? str(a.file_path) } }),
    replace: (a) => ({ toolName: "editTextFile", args: { path: str(a.file_path), oldText: str(a.old_string), newText: str(a.new_string) } }),
    list_directory: (a) => ({ toolName: "listDirectory", args: { path: str(a.path) ?? str(a.dir_path) } }),
  },
  codex: {
    command_execution: (a) => ({ toolName: "exec", args: { command: unwrapShell(a.command) } }),
  },
  cursor: {
    shellToolCall: (a) => ({ toolName: "exec", args: { command: str(a.command) } }),
    writeToolCall: (a) => ({ toolName: "writeTextFile", args: { path: str(a.path), text: str(a.fileText) ?? str(a.contents) } }),
    readToolCall: (a) => ({ toolName: "readTextFile", args: { path: str(a.path) } }),
    editToolCall: (a) => ({ toolName: "editTextFile", args: { path: str(a.path) } }),
  },
};

export function normalizeBuiltinTool(runtime: string, toolName: string, args: unknown): NormalizedTool | undefined {
  const map = TABLE[runtime]?.[toolName];
  if (!map) return undefined;
  const normalized = map(typeof args === "object" && args !== null ? (args as Args) : {});
  if (!normalized) return undefined;
  return { toolName: normalized.toolName, args: definedOnly(normalized.args) };
}

/** The arguments that have a value (the table's own keys, never the agent's). */
function definedOnly(args: Args): Args {
  const out: Args = {};
  for (const key of Object.keys(args)) if (args[key] !== undefined) out[key] = args[key];
  return out;
}
