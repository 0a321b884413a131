import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../../src/errors.ts";
import { SHIPPED_PRICE_TABLE, costOf, loadPriceTable, priceFor, priceTableInfo } from "../../../src/gateway/pricing.ts";
import type { MeteredUsage } from "../../../src/gateway/types.ts";

const shipped = loadPriceTable();

function usage(u: Partial<MeteredUsage>): MeteredUsage {
  const base = { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, ...u };
  return { ...base, totalTokens: base.inputTokens + base.outputTokens };
}

function writeTable(content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-pricing-"));
  const path = join(dir, "prices.json");
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

const entry = { inputPerMTok: 2, outputPerMTok: 8, source: "https://example.com/pricing", date: "2026-01-02" };

describe("the shipped table", () => {
  it("prices the models the project uses by default and in tests, each with a vendor source and date", () => {
    for (const model of [
      "claude-sonnet-4-5",
      "claude-haiku-4-5",
      "claude-opus-4-1",
      "gpt-5",
      "gpt-5-mini",
      "gpt-5-codex",
      "gemini-2.5-pro",
      "gemini-2.5-flash",
      "deepseek-chat",
    ]) {
      const price = priceFor(model, shipped);
      expect(price, model).toBeDefined();
      expect(price!.source).toMatch(/^https:\/\/(docs\.claude\.com|developers\.openai\.com|ai\.google\.dev|api-docs\.deepseek\.com)\//);
      expect(price!.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  it("reports its origin, newest date and the sha256 of the file bytes", () => {
    const info = priceTableInfo(shipped);
    expect(info.source).toBe("shipped");
    expect(info.sha256).toBe(createHash("sha256").update(readFileSync(SHIPPED_PRICE_TABLE)).digest("hex"));
    const dates = [...shipped.models.values()].map((p) => p.date).sort();
    expect(info.date).toBe(dates[dates.length - 1]);
  });
});

describe("priceFor", () => {
  it("matches exact ids, aliases and the Gemini resource name", () => {
    expect(priceFor("claude-haiku-4-5", shipped)?.inputPerMTok).toBe(1);
    expect(priceFor("deepseek-chat", shipped)).toBe(priceFor("deepseek-v4-flash", shipped));
    expect(priceFor("models/gemini-2.5-flash", shipped)).toBe(priceFor("gemini-2.5-flash", shipped));
    expect(priceFor("gemini-2.5-flash-lite", shipped)).not.toBe(priceFor("gemini-2.5-flash", shipped));
  });

  it("matches the longest known id followed by a snapshot suffix", () => {
    expect(priceFor("claude-sonnet-4-5-20250929", shipped)).toBe(priceFor("claude-sonnet-4-5", shipped));
    expect(priceFor("claude-sonnet-4-5@20250929", shipped)).toBe(priceFor("claude-sonnet-4-5", shipped));
    expect(priceFor("claude-opus-4-1-20250805", shipped)).toBe(priceFor("claude-opus-4-1", shipped));
    expect(priceFor("gpt-5-mini-2025-08-07", shipped)).toBe(priceFor("gpt-5-mini", shipped));
    expect(priceFor("gpt-5-2025-08-07", shipped)).toBe(priceFor("gpt-5", shipped));
    expect(priceFor("gemini-2.5-flash-001", shipped)).toBe(priceFor("gemini-2.5-flash", shipped));
  });

  it("never guesses: other models sharing a prefix, and unknown models, have no price", () => {
    for (const model of ["gpt-5-pro", "gpt-5.4", "claude-opus-4-5-20251101", "claude-sonnet-4-5-fast", "gemini-2.5-pro-preview-05-06", "llama3.2", "", undefined]) {
      expect(priceFor(model, shipped), String(model)).toBeUndefined();
    }
  });
});

describe("costOf", () => {
  const table = loadPriceTable(
    writeTable({
      version: 1,
      models: {
        full: { ...entry, inputPerMTok: 3, outputPerMTok: 15, cacheReadPerMTok: 0.3, cacheWritePerMTok: 3.75 },
        bare: { ...entry, inputPerMTok: 1, outputPerMTok: 4 },
      },
    }),
  );

  it("bills uncached input, cache reads, cache writes and output each at its price (input includes the cached)", () => {
    // 1,000,000 prompt tokens: 600k uncached, 300k read from cache, 100k written to it; 200k output.
    const u = usage({ inputTokens: 1_000_000, cachedInputTokens: 300_000, cacheWriteTokens: 100_000, outputTokens: 200_000 });
    expect(costOf("full", u, table)).toBeCloseTo(0.6 * 3 + 0.3 * 0.3 + 0.1 * 3.75 + 0.2 * 15, 10);
  });

  it("falls back to the input price where the table has no cache prices", () => {
    const u = usage({ inputTokens: 1000, cachedInputTokens: 400, cacheWriteTokens: 100, outputTokens: 10 });
    expect(costOf("bare", u, table)).toBeCloseTo((1000 * 1 + 10 * 4) / 1e6, 15);
  });

  it("counts reasoning tokens only as part of the output", () => {
    expect(costOf("bare", usage({ outputTokens: 100, reasoningTokens: 80 }), table)).toBeCloseTo((100 * 4) / 1e6, 15);
  });

  it("never bills negative input when an upstream reports more cached than total", () => {
    expect(costOf("full", usage({ inputTokens: 10, cachedInputTokens: 20 }), table)).toBeCloseTo((20 * 0.3) / 1e6, 15);
  });

  it("is null for an unknown or missing model, and 0 for no tokens", () => {
    expect(costOf("nope", usage({ inputTokens: 1 }), table)).toBeNull();
    expect(costOf(undefined, usage({ inputTokens: 1 }), table)).toBeNull();
    expect(costOf("full", usage({}), table)).toBe(0);
  });

  it("prices a dated model id with the shipped table", () => {
    const u = usage({ inputTokens: 2_000_000, cachedInputTokens: 1_000_000, outputTokens: 1_000_000 });
    expect(costOf("claude-sonnet-4-5-20250929", u, shipped)).toBeCloseTo(3 + 0.3 + 15, 10);
  });
});

describe("loadPriceTable with --pricing", () => {
  it("loads a valid file and reports its path as the source", () => {
    const path = writeTable({ version: 1, models: { "my-model": entry }, aliases: { mine: "my-model" } });
    const table = loadPriceTable(path);
    expect(priceFor("mine", table)?.outputPerMTok).toBe(8);
    expect(priceTableInfo(table)).toEqual({
      source: path,
      date: "2026-01-02",
      sha256: createHash("sha256").update(readFileSync(path)).digest("hex"),
    });
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ["not JSON", "{ nope", /not valid JSON/],
    ["a wrong version", { version: 2, models: {} }, /"version": expected 1/],
    ["a negative price", { version: 1, models: { m: { ...entry, inputPerMTok: -1 } } }, /"models"\."m"\."inputPerMTok": /],
    ["a string price", { version: 1, models: { m: { ...entry, outputPerMTok: "8" } } }, /"models"\."m"\."outputPerMTok": /],
    ["a missing source", { version: 1, models: { m: { ...entry, source: undefined } } }, /"models"\."m"\."source": /],
    ["a source that is not a URL", { version: 1, models: { m: { ...entry, source: "the docs" } } }, /"models"\."m"\."source": expected the http\(s\) URL/],
    ["a bad date", { version: 1, models: { m: { ...entry, date: "yesterday" } } }, /"models"\."m"\."date": expected the date/],
    ["an unknown key (typo)", { version: 1, models: { m: { ...entry, cacheReadPerMtok: 1 } } }, /"models"\."m": .*cacheReadPerMtok/],
    ["an alias to nothing", { version: 1, models: { m: entry }, aliases: { a: "missing" } }, /aliases\."a": names "missing"/],
  ];

  it.each(bad)("rejects %s with a one-line error naming the file and key", (_what, content, pattern) => {
    const path = writeTable(content);
    let error: unknown;
    try {
      loadPriceTable(path);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    const message = (error as Error).message;
    expect(message).toContain(`--pricing ${path}: `);
    expect(message).toMatch(pattern);
    expect(message).not.toContain("\n");
  });

  it("rejects a missing file as bad input", () => {
    expect(() => loadPriceTable("/nonexistent/prices.json")).toThrow(InvalidOptionError);
    expect(() => loadPriceTable("/nonexistent/prices.json")).toThrow("--pricing /nonexistent/prices.json: cannot read the price table (no such file)");
  });
});
