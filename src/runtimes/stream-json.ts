// Reading the CLIs' JSON-lines streams defensively: a line that is not a JSON object yields nothing (it stays in
// raw.log), and fields are read by type rather than trusted.

export type Json = Record<string, unknown>;

export function parseJsonObject(line: string): Json | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  return isObject(value) ? value : undefined;
}

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The last lines of a process's stderr, short enough for an error message. */
export function stderrSummary(stderrTail: string): string {
  return stderrTail.trim().split("\n").slice(-3).join(" ").slice(0, 500);
}
