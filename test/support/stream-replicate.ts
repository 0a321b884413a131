// Long Claude Code streams from a short recorded one, for measuring how the collector scales: the recorded tool
// turns (assistant lines and the user lines that answer them) are repeated with fresh ids between the recording's
// own start (system/init) and end (the final answer and the result line), so the stream stays one valid run.
import { readFileSync } from "node:fs";

/** A recorded stream-json stream to replicate: test/fixtures/claude-code/success.jsonl (three tool turns). */
export function recordedClaudeStream(name = "success.jsonl"): string[] {
  return readFileSync(new URL(`../fixtures/claude-code/${name}`, import.meta.url), "utf8").split("\n").filter((line) => line.trim() !== "");
}

interface StreamParts {
  head: string[];
  turns: string[][];
  tail: string[];
}

/**
 * `lines` split into what comes before the first assistant line, the tool turns (an assistant message's lines and
 * the user lines after them) and what follows the last user line.
 */
function splitStream(lines: string[]): StreamParts {
  const kinds = lines.map((line) => {
    const value = JSON.parse(line) as { type?: unknown };
    return typeof value.type === "string" ? value.type : "";
  });
  const first = kinds.indexOf("assistant");
  const lastUser = kinds.lastIndexOf("user");
  if (first < 0 || lastUser < first) throw new Error("replicateClaudeStream: the stream has no tool turn (an assistant line followed by a user line)");
  const turns: string[][] = [];
  let current: string[] = [];
  for (let i = first; i <= lastUser; i++) {
    // A turn ends with its user lines: the next assistant line opens the next turn.
    if (kinds[i] === "assistant" && current.length > 0 && kinds[i - 1] === "user") {
      turns.push(current);
      current = [];
    }
    current.push(lines[i]!);
  }
  turns.push(current);
  return { head: lines.slice(0, first), turns, tail: lines.slice(lastUser + 1) };
}

/** The ids one turn's lines carry: message ids, tool_use ids (and the tool_use_id answering them), line uuids. */
function idsOf(turn: string[]): string[] {
  const ids = new Set<string>();
  for (const line of turn) {
    const value = JSON.parse(line) as { uuid?: unknown; message?: { id?: unknown; content?: unknown } };
    if (typeof value.uuid === "string") ids.add(value.uuid);
    if (typeof value.message?.id === "string") ids.add(value.message.id);
    for (const block of Array.isArray(value.message?.content) ? (value.message.content as Array<Record<string, unknown>>) : []) {
      if (typeof block.id === "string") ids.add(block.id);
      if (typeof block.tool_use_id === "string") ids.add(block.tool_use_id);
    }
  }
  // Longest first, so an id that contains another is replaced whole.
  return [...ids].sort((a, b) => b.length - a.length);
}

/**
 * A stream of about `targetLines` lines (never more; fewer by less than one turn): the recording's head, its tool
 * turns repeated in order, each copy with fresh ids (`<id>-r<n>`), then the recording's tail. Every line but the
 * ids is byte-identical to the recording, so the JSON shapes and sizes are real ones.
 */
export function replicateClaudeStream(lines: readonly string[], targetLines: number): string[] {
  const { head, turns, tail } = splitStream([...lines]);
  const templates = turns.map((turn) => ({ turn, ids: idsOf(turn) }));
  const out = [...head];
  const room = targetLines - tail.length;
  for (let copy = 0, i = 0; ; copy += 1) {
    for (const { turn, ids } of templates) {
      if (out.length + turn.length > room) {
        out.push(...tail);
        return out;
      }
      i += 1;
      for (const line of turn) out.push(copy === 0 ? line : ids.reduce((text, id) => text.split(id).join(`${id}-r${i}`), line));
    }
  }
}
