// `perstack log --filter`: Perstack's expression grammar, `.field.path op value`.
//   path:  names joined by ".", `[]` for any element of an array, `[n]` for element n (an addition of ours)
//   op:    == != > >= < <=   (the ordering ones compare numbers only)
//   value: true, false, a number, "double" or 'single' quoted text, or bare text
// Perstack's meaning, kept: a path that leads nowhere never matches (not even `!=`), and where the path reaches an
// array (through `[]` or as the field's own value) the condition holds when it holds for any element.
import { InvalidOptionError } from "../errors.js";

export type FilterOperator = "==" | "!=" | ">" | ">=" | "<" | "<=";
export type PathSegment = { kind: "field"; name: string } | { kind: "each" } | { kind: "index"; index: number };

export interface FilterCondition {
  /** The path as written, for messages. */
  path: string;
  segments: PathSegment[];
  operator: FilterOperator;
  value: string | number | boolean;
}

const EXAMPLE = `.toolCalls[].toolName == "readTextFile"`;
const NAME = /^[A-Za-z_$][\w$]*/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function fail(expression: string, what: string): never {
  throw new InvalidOptionError(`--filter ${JSON.stringify(expression)}: ${what}`);
}

function parsePath(expression: string, path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  let rest = path;
  let first = true;
  while (rest !== "") {
    if (rest.startsWith("[]")) {
      if (first) break;
      segments.push({ kind: "each" });
      rest = rest.slice(2);
      continue;
    }
    const index = /^\[(\d+)\]/.exec(rest);
    if (index && !first) {
      segments.push({ kind: "index", index: Number(index[1]) });
      rest = rest.slice(index[0].length);
      continue;
    }
    const dotted = first ? rest : rest.startsWith(".") ? rest.slice(1) : undefined;
    const name = dotted === undefined ? null : NAME.exec(dotted);
    if (!name) break;
    segments.push({ kind: "field", name: name[0] });
    rest = dotted!.slice(name[0].length);
    first = false;
  }
  if (rest !== "" || segments.length === 0) {
    fail(expression, `".${path}" is not a field path: write names joined by "." with [] for any element of an array, e.g. ${EXAMPLE}`);
  }
  return segments;
}

function parseValue(expression: string, raw: string): string | number | boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  const quote = raw[0];
  if (quote === '"' || quote === "'") {
    if (raw.length < 2 || !raw.endsWith(quote)) fail(expression, `the quoted value is not closed: end it with ${quote}`);
    return raw.slice(1, -1);
  }
  return NUMBER.test(raw) ? Number(raw) : raw;
}

export function parseFilterExpression(expression: string): FilterCondition {
  const text = expression.trim();
  if (!text.startsWith(".")) fail(expression, `start with "." and a field name, then an operator and a value, e.g. ${EXAMPLE}`);
  const match = /^\.([^\s=!<>]*)\s*(==|!=|>=|<=|>|<|=)?\s*([\s\S]*)$/.exec(text);
  const path = match?.[1] ?? "";
  const segments = parsePath(expression, path);
  const operator = match?.[2];
  if (operator === undefined) fail(expression, `an operator (== != > >= < <=) and a value must follow .${path}, e.g. ${EXAMPLE}`);
  if (operator === "=") fail(expression, `compare with == (a single = is not an operator)`);
  const raw = (match?.[3] ?? "").trim();
  if (raw === "") fail(expression, `the value after ${operator} is missing, e.g. .${path} ${operator} ${operator === "==" || operator === "!=" ? '"text"' : "3"}`);
  const value = parseValue(expression, raw);
  if (operator !== "==" && operator !== "!=" && typeof value !== "number") {
    fail(expression, `${operator} compares numbers; give a number after it, or use == or != for text`);
  }
  return { path: `.${path}`, segments, operator: operator as FilterOperator, value };
}

/** Every value the path reaches from `root` (through `[]`, several), arrays at the end spread into their elements. */
function valuesAt(root: unknown, segments: readonly PathSegment[]): unknown[] {
  let current: unknown[] = [root];
  for (const segment of segments) {
    const next: unknown[] = [];
    for (const value of current) {
      if (segment.kind === "each") {
        if (Array.isArray(value)) next.push(...value);
      } else if (segment.kind === "index") {
        if (Array.isArray(value) && segment.index < value.length) next.push(value[segment.index]);
      } else if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.hasOwn(value, segment.name)) {
        next.push((value as Record<string, unknown>)[segment.name]);
      }
    }
    current = next;
  }
  return current.flatMap((value) => (Array.isArray(value) ? value : [value])).filter((value) => value !== undefined);
}

function compare(actual: unknown, operator: FilterOperator, expected: string | number | boolean): boolean {
  switch (operator) {
    case "==":
      return actual === expected;
    case "!=":
      return actual !== expected;
    default: {
      if (typeof actual !== "number" || typeof expected !== "number") return false;
      if (operator === ">") return actual > expected;
      if (operator === ">=") return actual >= expected;
      if (operator === "<") return actual < expected;
      return actual <= expected;
    }
  }
}

export function matchesFilter(condition: FilterCondition, event: unknown): boolean {
  return valuesAt(event, condition.segments).some((value) => compare(value, condition.operator, condition.value));
}
