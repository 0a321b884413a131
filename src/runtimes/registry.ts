// Which runtime module serves which --runtime name. Names that are accepted but not built yet fail with a clear
// error instead of a crash.
import type { RuntimeName } from "../config/schema.js";
import { RuntimeNotAvailableError } from "../errors.js";
import { claudeCode } from "./claude-code.js";
import { codex } from "./codex.js";
import { cursor } from "./cursor.js";
import { gemini } from "./gemini.js";
import { perstack } from "./perstack.js";
import type { RuntimeAdapter } from "./types.js";

const AVAILABLE: Partial<Record<RuntimeName, RuntimeAdapter>> = {
  perstack,
  // Perstack's current name for its built-in runtime.
  local: perstack,
  // The seed's name for the same built-in agent in the sandbox.
  docker: perstack,
  "claude-code": claudeCode,
  gemini,
  codex,
  cursor,
};

export function runtimeAdapter(name: RuntimeName): RuntimeAdapter {
  const adapter = AVAILABLE[name];
  if (!adapter) {
    const available = Object.keys(AVAILABLE).join(", ");
    throw new RuntimeNotAvailableError(`runtime "${name}" is not available yet in this version; use --runtime ${available}`);
  }
  return adapter;
}
