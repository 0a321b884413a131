// Formats zod issues as the one-line errors users see: the TOML key path in the style users write it
// (experts."writer".skills."search".allowedDomains[1]) followed by what is wrong and what to do.
import type { z } from "zod";
import { closestKey } from "../text/did-you-mean.js";
import { KNOWN_KEYS, PROVIDER_NAMES, PROVIDER_SETTING_KEYS, SKILL_TYPES, type ProviderName } from "./schema.js";

export { closestKey, levenshtein } from "../text/did-you-mean.js";

/** Segments whose children are user-chosen names, quoted in paths as TOML quotes them. */
const NAMED_CHILDREN = new Set(["experts", "skills", "tools", "headers"]);

export function formatKeyPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  path.forEach((segment, i) => {
    if (typeof segment === "number") {
      out += `[${segment}]`;
      return;
    }
    const parent = i > 0 ? path[i - 1] : undefined;
    const name = String(segment);
    const piece = typeof parent === "string" && NAMED_CHILDREN.has(parent) ? JSON.stringify(name) : name;
    out += out === "" ? piece : `.${piece}`;
  });
  return out === "" ? "(top level)" : out;
}

/** Which keys the object at `path` accepts, judged from where it sits in the document. */
function knownKeysAt(path: ReadonlyArray<PropertyKey>, raw: unknown): readonly string[] {
  const p = path.map(String);
  if (p.length === 0) return KNOWN_KEYS.top;
  if (p.length === 1 && p[0] === "provider") return KNOWN_KEYS.provider;
  if (p.length === 2 && p[0] === "provider" && p[1] === "setting") return KNOWN_KEYS.setting;
  if (p.length === 2 && p[0] === "experts") return KNOWN_KEYS.expert;
  if (p.length === 4 && p[0] === "experts" && p[2] === "skills") {
    const type = valueAt(raw, path) as { type?: unknown } | undefined;
    if (type?.type === "mcpSseSkill") return KNOWN_KEYS.mcpSseSkill;
    if (type?.type === "interactiveSkill") return KNOWN_KEYS.interactiveSkill;
    return KNOWN_KEYS.mcpStdioSkill;
  }
  if (p.length === 6 && p[4] === "tools") return KNOWN_KEYS.tool;
  return [];
}

/** The providerName when `path` is [provider, setting]. */
function settingOwner(path: ReadonlyArray<PropertyKey>, raw: unknown): string | undefined {
  if (path.length !== 2 || path[0] !== "provider" || path[1] !== "setting") return undefined;
  const name = valueAt(raw, ["provider", "providerName"]);
  return typeof name === "string" ? name : undefined;
}

function valueAt(raw: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let node: unknown = raw;
  for (const segment of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[segment];
  }
  return node;
}

/** Keys removed from the document as strays, by the key path of the object that held them. */
export type StrayKeys = Map<string, string[]>;

export const strayPathKey = (path: ReadonlyArray<PropertyKey>): string => JSON.stringify(path.map(String));

/**
 * The one-line warning for a key no schema object knows: Perstack drops such keys, so this project does too, but
 * says so, with the key it was probably meant to be.
 */
export function formatStrayKey(path: ReadonlyArray<PropertyKey>, key: string, raw: unknown): string {
  const where = formatKeyPath([...path, key]);
  const provider = settingOwner(path, raw);
  if (provider && (KNOWN_KEYS.setting as readonly string[]).includes(key)) {
    const accepted = PROVIDER_SETTING_KEYS[provider as ProviderName]?.join(", ") ?? "";
    return `${where}: not a setting of provider "${provider}", ignored; it accepts ${accepted}`;
  }
  const suggestion = closestKey(key, knownKeysAt(path, raw));
  return suggestion
    ? `${where}: unknown key, ignored; did you mean "${suggestion}"?`
    : `${where}: unknown key, ignored; remove it (see perstack.toml.example or \`perstack schema\` for the accepted keys)`;
}

/**
 * `; did you mean to write "wanted" instead of "stray"?` when a stray key at `objectPath` resembles one of `wanted`:
 * one dropped earlier, or one still there because the object never parsed (a union whose discriminator is missing).
 */
function strayHint(objectPath: ReadonlyArray<PropertyKey>, wanted: readonly string[], strays: StrayKeys, raw: unknown): string {
  const holder = valueAt(raw, objectPath);
  const known = knownKeysAt(objectPath, raw);
  const present = holder !== null && typeof holder === "object" ? Object.keys(holder).filter((k) => !known.includes(k)) : [];
  for (const stray of [...(strays.get(strayPathKey(objectPath)) ?? []), ...present]) {
    const match = closestKey(stray, wanted);
    if (match) return `; did you mean to write "${match}" instead of "${stray}"?`;
  }
  return "";
}

/** One line per zod issue, e.g. `experts."a".skills."s".allowedDomains[1]: "x y" contains whitespace ...`. */
export function formatIssue(issue: z.core.$ZodIssue, raw: unknown, strays: StrayKeys = new Map()): string {
  const where = formatKeyPath(issue.path);
  const parent = issue.path.slice(0, -1);
  const last = issue.path.at(-1);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => formatStrayKey(issue.path, key, raw)).join("\n");
  }
  if (issue.code === "invalid_union" && "discriminator" in issue && issue.discriminator) {
    // zod 4 reports the discriminator's own path.
    const value = valueAt(raw, issue.path);
    const options = issue.discriminator === "type" ? SKILL_TYPES.join(", ") : PROVIDER_NAMES.join(", ");
    const suggestion = typeof value === "string" ? closestKey(value, issue.discriminator === "type" ? SKILL_TYPES : PROVIDER_NAMES) : undefined;
    return value === undefined
      ? `${where}: is required; one of ${options}${strayHint(parent, [issue.discriminator], strays, raw)}`
      : `${where}: ${JSON.stringify(value)} is not one of ${options}${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`;
  }
  if (issue.code === "invalid_type") {
    const value = valueAt(raw, issue.path);
    if (value === undefined) return `${where}: is required${typeof last === "string" ? strayHint(parent, [last], strays, raw) : ""}`;
    return `${where}: expected ${issue.expected === "int" ? "a whole number" : issue.expected}, got ${describe(value)}`;
  }
  // zod's own wording for these ("Too small: expected number to be >0", "Invalid input") names no rule a user
  // knows; each is said again in the terms of perstack.toml.
  if (issue.code === "too_small" || issue.code === "too_big") {
    const value = valueAt(raw, issue.path);
    const small = issue.code === "too_small";
    const bound = Number(small ? issue.minimum : issue.maximum);
    const exclusive = issue.inclusive === false;
    if (issue.origin === "string" && small && bound === 1) return `${where}: must not be empty`;
    const what = issue.origin === "string" ? " characters" : issue.origin === "array" ? " entries" : "";
    const rule = small ? (exclusive ? `greater than ${bound}` : `at least ${bound}`) : exclusive ? `less than ${bound}` : `at most ${bound}`;
    return `${where}: must be ${rule}${what}, got ${describe(value)}`;
  }
  if (issue.code === "invalid_value") {
    return `${where}: ${describe(valueAt(raw, issue.path))} is not one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (issue.code === "invalid_union") {
    const value = valueAt(raw, issue.path);
    if (issue.path.length === 1 && issue.path[0] === "reasoningBudget") {
      return `${where}: ${describe(value)} is not a reasoning budget; use "none", "minimal", "low", "medium", "high" or a token count like 8000`;
    }
    return `${where}: ${describe(value)} is not a valid value here; see perstack.toml.example or \`perstack schema\``;
  }
  if (issue.code === "invalid_key") {
    // A table's name (an expert key, a skill name) that the rule for names refuses; the path ends at the name.
    return `${where}: the name ${issue.issues[0]?.message ?? "is not valid"}`;
  }
  if (issue.code === "custom") {
    // A refinement over an object (e.g. "needs packageName or args") may be explained by a misspelt key.
    return `${where}: ${issue.message}${strayHint(issue.path, knownKeysAt(issue.path, raw), strays, raw)}`;
  }
  return `${where}: ${issue.message}`;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return "a table";
  return `${typeof value} ${JSON.stringify(value)}`;
}
