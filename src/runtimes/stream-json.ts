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

/**
 * One line of a CLI's JSON-lines stdout. Blank lines are nothing; a line that is not a JSON object was not
 * written by the CLI's stream (another process in the container printed it): the collector refuses it with a
 * warning, and it stays in raw.log.
 */
export function streamObject(line: string): Json | undefined {
  if (line.trim() === "") return undefined;
  const value = parseJsonObject(line);
  if (!value) throw new Error(`not a JSON object: ${JSON.stringify(line.slice(0, 120))}`);
  return value;
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
