import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findConfigFile, loadConfig, parseConfigText } from "../../../src/config/load.js";
import { ConfigNotFoundError, ConfigSchemaError, ConfigSyntaxError } from "../../../src/errors.js";

const parseError = (text: string): Error => {
  try {
    parseConfigText(text, "/p/perstack.toml");
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
};

const minimal = `[experts."a"]\ninstruction = "hi"\n`;

describe("perstack.toml loading", () => {
  it("accepts the example file with every key, warning about Perstack-only keys", () => {
    const text = `${minimal}minRuntimeVersion = "v1"\n`;
    const loaded = parseConfigText(text, "/p/perstack.toml");
    expect(loaded.file.experts?.a?.version).toBe("1.0.0");
    expect(loaded.warnings).toEqual(['experts."a".minRuntimeVersion: accepted for Perstack compatibility but not used by this version']);
  });

  it("parses perstack.toml.example without errors", () => {
    const loaded = loadConfig({ cwd: process.cwd(), configPath: "perstack.toml.example" });
    expect(Object.keys(loaded.file.experts ?? {})).toEqual(["writer", "fact-checker"]);
    expect(loaded.warnings).toEqual([]);
  });

  it("names file, line and column of a TOML syntax error", () => {
    const error = parseError(`model = "x"\n[experts."a"\ninstruction = "x"\n`);
    expect(error).toBeInstanceOf(ConfigSyntaxError);
    expect(error.message).toMatch(/^\/p\/perstack\.toml:2:\d+: TOML syntax error: /);
    expect(error.message).not.toContain("\n");
  });

  it("reports an unknown key with a did-you-mean", () => {
    const error = parseError(`modle = "x"\n${minimal}`);
    expect(error).toBeInstanceOf(ConfigSchemaError);
    expect(error.message).toBe('/p/perstack.toml: modle: unknown key; did you mean "model"?');
  });

  it("reports an unknown key deep in a skill by its full key path", () => {
    const error = parseError(`${minimal}[experts."a".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "x"\nallowedDomain = ["a.com"]\n`);
    expect(error.message).toBe('/p/perstack.toml: experts."a".skills."s".allowedDomain: unknown key; did you mean "allowedDomains"?');
  });

  it("reports an unknown key with no close match without a suggestion", () => {
    expect(parseError(`zzzzzzzz = 1\n${minimal}`).message).toContain("zzzzzzzz: unknown key; remove it");
  });

  it("names the offending allowedDomains entry and why", () => {
    const error = parseError(`[experts."writer"]\ninstruction = "hi"\n[experts."writer".skills."search"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "x"\nallowedDomains = ["ok.com", "https://bad.com"]\n`);
    expect(error.message).toBe(
      '/p/perstack.toml: experts."writer".skills."search".allowedDomains[1]: "https://bad.com" must be a host name, not a URL (drop the scheme); use an exact host or *.domain',
    );
  });

  it("rejects a delegate that names no expert", () => {
    const error = parseError(`${minimal}delegates = ["b"]\n`);
    expect(error.message).toBe('/p/perstack.toml: experts."a".delegates[0]: "b" names no expert; define [experts."b"] or use one of: a');
  });

  it("requires an instruction", () => {
    expect(parseError(`[experts."a"]\ndescription = "x"\n`).message).toBe('/p/perstack.toml: experts."a".instruction: is required');
  });

  it("rejects a provider setting that belongs to another provider", () => {
    const error = parseError(`[provider]\nproviderName = "anthropic"\n[provider.setting]\nregion = "x"\n${minimal}`);
    expect(error.message).toBe('/p/perstack.toml: provider.setting.region: not a setting of provider "anthropic"; it accepts baseUrl, headers');
  });

  it("suggests the provider name that was meant", () => {
    expect(parseError(`[provider]\nproviderName = "antropic"\n`).message).toContain('(did you mean "anthropic"?)');
  });

  it("rejects a skill type it does not know", () => {
    expect(parseError(`${minimal}[experts."a".skills."s"]\ntype = "mcpFoo"\n`).message).toBe(
      '/p/perstack.toml: experts."a".skills."s".type: "mcpFoo" is not one of mcpStdioSkill, mcpSseSkill, interactiveSkill',
    );
  });

  it("requires exactly one of packageName and args", () => {
    const base = `${minimal}[experts."a".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\n`;
    expect(parseError(base).message).toContain("needs packageName");
    expect(parseError(`${base}packageName = "x"\nargs = ["y"]\n`).message).toContain("not both");
  });

  it("rejects an SSE endpoint that is not public https", () => {
    const base = `${minimal}[experts."a".skills."s"]\ntype = "mcpSseSkill"\n`;
    expect(parseError(`${base}endpoint = "http://x.com/sse"\n`).message).toContain("must be an https:// URL");
    expect(parseError(`${base}endpoint = "https://10.0.0.1/sse"\n`).message).toContain("must be a public host name");
  });

  it("rejects interactive tool schemas that are not JSON", () => {
    const text = `${minimal}[experts."a".skills."ask"]\ntype = "interactiveSkill"\n[experts."a".skills."ask".tools."q"]\ninputJsonSchema = "{nope"\n`;
    expect(parseError(text).message).toContain('experts."a".skills."ask".tools."q".inputJsonSchema: is not valid JSON');
  });

  it("reports type errors with the value it got", () => {
    expect(parseError(`maxSteps = "ten"\n`).message).toBe('/p/perstack.toml: maxSteps: expected number, got string "ten"');
  });

  it("finds perstack.toml by walking up, and says where it looked when there is none", () => {
    const root = mkdtempSync(join(tmpdir(), "perstack-find-"));
    const nested = join(root, "a", "b");
    mkdirSync(nested, { recursive: true });
    writeFileSync(join(root, "perstack.toml"), minimal);
    expect(findConfigFile(nested)).toBe(join(root, "perstack.toml"));
    const empty = mkdtempSync(join(tmpdir(), "perstack-none-"));
    expect(() => loadConfig({ cwd: empty, configPath: "missing.toml" })).toThrow(ConfigNotFoundError);
  });
});
