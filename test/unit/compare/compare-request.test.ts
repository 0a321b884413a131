// What `perstack compare` accepts, and what each runtime's runs are given when perstack.toml's provider or model is
// one the runtime cannot use.
import { describe, expect, it } from "vitest";
import { checkCounts, parseModels, parseRuntimes, runtimeChoice } from "../../../src/compare/compare-request.js";
import { InvalidOptionError } from "../../../src/errors.js";

describe("--runtimes", () => {
  it("keeps the order given, trims, and treats local and docker as perstack", () => {
    expect(parseRuntimes(" perstack, claude-code,gemini ,codex")).toEqual(["perstack", "claude-code", "gemini", "codex"]);
    expect(parseRuntimes("local,codex")).toEqual(["perstack", "codex"]);
  });

  it("names an unknown runtime with a guess, a repeat, and an empty list", () => {
    expect(() => parseRuntimes("perstack,claud-code")).toThrow('--runtimes: "claud-code" is not a runtime; did you mean claude-code? choose from perstack, local, docker, claude-code, gemini, codex, cursor');
    expect(() => parseRuntimes("perstack,docker")).toThrow("--runtimes: docker (perstack) is named twice; use --repeat to run a runtime more than once");
    expect(() => parseRuntimes(" , ")).toThrow(InvalidOptionError);
  });
});

describe("--model", () => {
  it("takes one model for all, or runtime=model pairs of runtimes being compared", () => {
    expect(parseModels(undefined, ["codex"])).toEqual({ perRuntime: {} });
    expect(parseModels("gpt-5", ["codex"])).toEqual({ model: "gpt-5", perRuntime: {} });
    expect(parseModels("claude-code=claude-opus-4-1, gemini=gemini-2.5-flash", ["claude-code", "gemini"])).toEqual({
      perRuntime: { "claude-code": "claude-opus-4-1", gemini: "gemini-2.5-flash" },
    });
    expect(() => parseModels("codex=gpt-5", ["gemini"])).toThrow("--model codex=gpt-5: codex is not among --runtimes (gemini)");
    expect(() => parseModels("codex=", ["codex"])).toThrow(/give runtime=model pairs/);
  });
});

describe("--repeat and --concurrency", () => {
  it("bounds both, and runs at most 4 at once by default", () => {
    expect(checkCounts(2, undefined, 8)).toEqual({ repeat: 2, concurrency: 4 });
    expect(checkCounts(1, undefined, 2)).toEqual({ repeat: 1, concurrency: 2 });
    expect(() => checkCounts(21, 1, 21)).toThrow("--repeat 21: at most 20");
    expect(() => checkCounts(1, 17, 1)).toThrow("--concurrency 17: at most 16 runs at once");
  });
});

describe("each runtime's provider and model", () => {
  it("keeps perstack.toml's provider and model where the runtime can use them", () => {
    expect(runtimeChoice("perstack", { fileProvider: "deepseek", fileModel: "deepseek-chat", perRuntime: {} })).toEqual({ runtime: "perstack", model: "deepseek-chat", notes: [] });
    expect(runtimeChoice("claude-code", { fileProvider: "anthropic", fileModel: "claude-opus-4-1", perRuntime: {} })).toEqual({ runtime: "claude-code", model: "claude-opus-4-1", notes: [] });
    expect(runtimeChoice("docker", { perRuntime: {} })).toEqual({ runtime: "perstack", notes: [] });
  });

  it("gives a CLI its vendor's provider and its default model when the file's are another vendor's, and says so", () => {
    const gemini = runtimeChoice("gemini", { fileProvider: "deepseek", fileModel: "deepseek-chat", perRuntime: {} });
    expect(gemini).toMatchObject({ runtime: "gemini", provider: "google", model: "gemini-2.5-pro" });
    expect(gemini.notes).toEqual([
      "gemini cannot use provider deepseek, so its runs use google",
      "gemini cannot run deepseek-chat, so its runs use its default model gemini-2.5-pro (choose with --model gemini=<model>)",
    ]);
    // A model of another vendor on the runtime's own provider.
    expect(runtimeChoice("codex", { fileModel: "claude-sonnet-4-5", perRuntime: {} })).toMatchObject({ model: "gpt-5", notes: [expect.stringMatching(/codex cannot run claude-sonnet-4-5/)] });
  });

  it("uses a per-runtime model as given", () => {
    expect(runtimeChoice("gemini", { fileProvider: "anthropic", model: "claude-sonnet-4-5", perRuntime: { gemini: "gemini-2.5-flash" } })).toEqual({
      runtime: "gemini",
      provider: "google",
      model: "gemini-2.5-flash",
      notes: ["gemini cannot use provider anthropic, so its runs use google"],
    });
  });

  it("leaves cursor's provider alone: it talks to its own service", () => {
    expect(runtimeChoice("cursor", { fileProvider: "deepseek", perRuntime: {} })).toEqual({ runtime: "cursor", notes: [] });
  });
});
