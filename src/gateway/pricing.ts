// The price table: what one model call cost, from the counts the gateway metered. The table is data
// (pricing/prices.json, or the file `--pricing <file>` names), per model, in USD per million tokens, each entry
// with the vendor page it was read from and when. Lookups never guess: a model the table does not know costs
// `null`, and the caller warns.
//
// Convention (MeteredUsage's): inputTokens counts every prompt token, including those read from a cache
// (cachedInputTokens) and those written to one (cacheWriteTokens). So the uncached remainder is billed at the
// input price, cache reads at the cache-read price, cache writes at the cache-write price (each falling back to
// the input price when the table has none: the vendor charges nothing extra), and output, which includes
// reasoning tokens, at the output price.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { z } from "zod";
import { InvalidOptionError } from "../errors.js";
import { packagePath } from "../package-root.js";
import type { MeteredUsage, ModelPrice } from "./types.js";

export const SHIPPED_PRICE_TABLE = packagePath("pricing", "prices.json");

export interface PriceTable {
  models: ReadonlyMap<string, ModelPrice>;
  /** Other names of a model in `models` (e.g. a vendor's compatibility name). */
  aliases: ReadonlyMap<string, string>;
  /** "shipped", or the path of the file `--pricing` named. */
  origin: string;
  /** sha256 (hex) of the table file's bytes, so a run records exactly which table priced it. */
  sha256: string;
}

const pricePerMTok = z.number().finite().nonnegative();

const modelPriceSchema = z.strictObject({
  inputPerMTok: pricePerMTok,
  outputPerMTok: pricePerMTok,
  cacheReadPerMTok: pricePerMTok.optional(),
  cacheWritePerMTok: pricePerMTok.optional(),
  source: z.url({ protocol: /^https?$/, error: "expected the http(s) URL of the vendor's pricing page" }),
  date: z.iso.date({ error: "expected the date the price was read, as YYYY-MM-DD" }),
  /** For maintainers: what the price leaves out (tiers, TTLs); not used in the arithmetic. */
  note: z.string().optional(),
});

const modelId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:@/-]*$/, "expected a model id");

const priceTableSchema = z.strictObject({
  version: z.literal(1, { error: "expected 1 (the only table format there is)" }),
  models: z.record(modelId, modelPriceSchema),
  aliases: z.record(modelId, z.string()).optional(),
});

function describePath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(top level)";
  return path.map((part) => (typeof part === "number" ? `[${part}]` : JSON.stringify(String(part)))).join(".");
}

/**
 * Parses a price table's text. `label` names the file in errors; `origin` is what priceTableInfo reports.
 * Throws a one-line error naming the file and the offending key.
 */
export function parsePriceTable(bytes: Buffer, label: string, origin: string, fail: (message: string) => Error): PriceTable {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw fail(`${label}: not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
  const parsed = priceTableSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const message = issue ? `${describePath(issue.path)}: ${issue.message}` : "invalid";
    throw fail(`${label}: ${message}`);
  }
  const models = new Map<string, ModelPrice>();
  for (const [id, entry] of Object.entries(parsed.data.models)) {
    const price: ModelPrice = {
      inputPerMTok: entry.inputPerMTok,
      outputPerMTok: entry.outputPerMTok,
      source: entry.source,
      date: entry.date,
    };
    if (entry.cacheReadPerMTok !== undefined) price.cacheReadPerMTok = entry.cacheReadPerMTok;
    if (entry.cacheWritePerMTok !== undefined) price.cacheWritePerMTok = entry.cacheWritePerMTok;
    models.set(id, price);
  }
  const aliases = new Map<string, string>();
  for (const [alias, target] of Object.entries(parsed.data.aliases ?? {})) {
    if (!models.has(target)) {
      throw fail(`${label}: aliases.${JSON.stringify(alias)}: names ${JSON.stringify(target)}, which is not in models`);
    }
    if (models.has(alias)) {
      throw fail(`${label}: aliases.${JSON.stringify(alias)}: is also a key of models; keep one`);
    }
    aliases.set(alias, target);
  }
  return { models, aliases, origin, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/**
 * Loads the price table: the shipped one, or the file `--pricing <file>` named (bad input: InvalidOptionError,
 * naming the file and key).
 */
export function loadPriceTable(path?: string): PriceTable {
  if (path === undefined) {
    // A broken shipped table is a broken install, not something the user's flags can fix.
    const broken = (message: string) => new Error(`perstack: the shipped price table is broken (${message}); reinstall`);
    let bytes: Buffer;
    try {
      bytes = readFileSync(SHIPPED_PRICE_TABLE);
    } catch (err) {
      throw broken(`${SHIPPED_PRICE_TABLE}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    return parsePriceTable(bytes, SHIPPED_PRICE_TABLE, "shipped", broken);
  }
  const label = `--pricing ${path}`;
  const invalid = (message: string) => new InvalidOptionError(`${message}; see pricing/prices.json for the format`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (code ?? String(err));
    throw new InvalidOptionError(`${label}: cannot read the price table (${why})`);
  }
  return parsePriceTable(bytes, label, path, invalid);
}

/** What job.json records about the table that priced a run. `date` is the newest entry's date. */
export function priceTableInfo(table: PriceTable): { source: string; date: string; sha256: string } {
  let date = "";
  for (const price of table.models.values()) if (price.date > date) date = price.date;
  return { source: table.origin, date, sha256: table.sha256 };
}

/**
 * What may follow a known id in a response's model name and still be the same model at the same price: a
 * snapshot date (Anthropic's `-20250929`, OpenAI's `-2025-08-07`, Vertex's `@20250929`), Google's `-001`
 * version, or `-latest`. Anything else is a different model: `gpt-5-pro` is not `gpt-5`, `claude-opus-4-5` is
 * not `claude-opus-4`, however long the shared prefix.
 */
const SNAPSHOT_SUFFIX = /^(?:-\d{8}|-\d{4}-\d{2}-\d{2}|@\d{8}|-\d{3}|-latest)$/;

/** The price of a model: by exact id or alias, then by a known id plus a snapshot suffix (the longest such id). */
export function priceFor(model: string | undefined, table: PriceTable): ModelPrice | undefined {
  if (model === undefined) return undefined;
  // The Gemini API names models as resources ("models/gemini-2.5-pro") in some places.
  const id = model.startsWith("models/") ? model.slice("models/".length) : model;
  const exact = (name: string): ModelPrice | undefined => {
    const target = table.aliases.get(name) ?? name;
    return table.models.get(target);
  };
  const direct = exact(id);
  if (direct) return direct;
  let best: string | undefined;
  for (const known of [...table.models.keys(), ...table.aliases.keys()]) {
    if (!id.startsWith(known) || !SNAPSHOT_SUFFIX.test(id.slice(known.length))) continue;
    if (best === undefined || known.length > best.length) best = known;
  }
  return best === undefined ? undefined : exact(best);
}

/** The cost in USD of one call's usage, or null when the table does not know the model (never a guess). */
export function costOf(model: string | undefined, usage: MeteredUsage, table: PriceTable): number | null {
  const price = priceFor(model, table);
  if (!price) return null;
  const cacheRead = usage.cachedInputTokens;
  const cacheWrite = usage.cacheWriteTokens;
  // A report with more cached than total input tokens is the upstream's inconsistency; never bill negative.
  const uncached = Math.max(0, usage.inputTokens - cacheRead - cacheWrite);
  return (
    (uncached * price.inputPerMTok +
      cacheRead * (price.cacheReadPerMTok ?? price.inputPerMTok) +
      cacheWrite * (price.cacheWritePerMTok ?? price.inputPerMTok) +
      usage.outputTokens * price.outputPerMTok) /
    1e6
  );
}
