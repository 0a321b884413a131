import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findConfigFile, loadConfig, parseConfigText } from "../../../src/config/load.js";
import { ConfigNotFoundError, ConfigSyntaxError } from "../../../src/errors.js";

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
  it("accepts the example file with every key, warning about Perstack-only keys under the expert they belong to", () => {
    const text = `${minimal}minRuntimeVersion = "v1"\n`;
    const loaded = parseConfigText(text, "/p/perstack.toml");
    expect(loaded.file.experts?.a?.version).toBe("1.0.0");
    expect(loaded.warnings).toEqual([]);
    expect(loaded.expertWarnings).toEqual({ a: ['experts."a".minRuntimeVersion: accepted for Perstack compatibility but not used by this version'] });
  });

  it("parses perstack.toml.example without errors", () => {
    const loaded = loadConfig({ cwd: process.cwd(), configPath: "perstack.toml.example" });
    expect(Object.keys(loaded.file.experts ?? {})).toEqual(["writer", "fact-checker"]);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.expertWarnings).toEqual({});
  });

  it("names file, line and column of a TOML syntax error", () => {
    const error = parseError(`model = "x"\n[experts."a"\ninstruction = "x"\n`);
    expect(error).toBeInstanceOf(ConfigSyntaxError);
    expect(error.message).toMatch(/^\/p\/perstack\.toml:2:\d+: TOML syntax error: /);
    expect(error.message).not.toContain("\n");
  });

  it("drops an unknown key with a one-line warning and a did-you-mean, as Perstack drops it", () => {
    const loaded = parseConfigText(`modle = "x"\n${minimal}`, "/p/perstack.toml");
    expect(loaded.warnings).toEqual(['modle: unknown key, ignored; did you mean "model"?']);
    expect(loaded.file).not.toHaveProperty("modle");
  });

  it("names an unknown key deep in a skill by its full key path, under its expert", () => {
    const loaded = parseConfigText(`${minimal}[experts."a".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "x"\nallowedDomain = ["a.com"]\n`, "/p/perstack.toml");
    expect(loaded.expertWarnings.a).toEqual(['experts."a".skills."s".allowedDomain: unknown key, ignored; did you mean "allowedDomains"?']);
  });

  it("warns about an unknown key with no close match without a suggestion", () => {
    const loaded = parseConfigText(`zzzzzzzz = 1\n${minimal}`, "/p/perstack.toml");
    expect(loaded.warnings).toHaveLength(1);
    expect(loaded.warnings[0]).toMatch(/^zzzzzzzz: unknown key, ignored; remove it \(see perstack\.toml\.example or `perstack schema`/);
  });

  it("errors on a missing required key when a stray key resembles it, naming both", () => {
    expect(parseError(`[experts."a"]\ninstuction = "hi"\n`).message).toBe(
      '/p/perstack.toml: experts."a".instruction: is required; did you mean to write "instruction" instead of "instuction"?',
    );
    const skill = `${minimal}[experts."a".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackagename = "x"\n`;
    expect(parseError(skill).message).toBe(
      '/p/perstack.toml: experts."a".skills."s": needs packageName (an npm package to run) or args (the command\'s arguments); did you mean to write "packageName" instead of "packagename"?',
    );
    expect(parseError(`${minimal}[experts."a".skills."s"]\ntpye = "mcpStdioSkill"\ncommand = "npx"\npackageName = "x"\n`).message).toBe(
      '/p/perstack.toml: experts."a".skills."s".type: is required; one of mcpStdioSkill, mcpSseSkill, interactiveSkill; did you mean to write "type" instead of "tpye"?',
    );
  });

  it("names the offending allowedDomains entry and why", () => {
    const error = parseError(`[experts."writer"]\ninstruction = "hi"\n[experts."writer".skills."search"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "x"\nallowedDomains = ["ok.com", "https://bad.com"]\n`);
    expect(error.message).toBe(
      '/p/perstack.toml: experts."writer".skills."search".allowedDomains[1]: "https://bad.com" must be a host name, not a URL (drop the scheme); use an exact host or *.domain',
    );
  });

  it("requires an instruction", () => {
    expect(parseError(`[experts."a"]\ndescription = "x"\n`).message).toBe('/p/perstack.toml: experts."a".instruction: is required');
  });

  it("drops a provider setting that belongs to another provider, saying which ones it accepts", () => {
    const loaded = parseConfigText(`[provider]\nproviderName = "anthropic"\n[provider.setting]\nregion = "x"\n${minimal}`, "/p/perstack.toml");
    expect(loaded.warnings).toEqual(['provider.setting.region: not a setting of provider "anthropic", ignored; it accepts baseUrl, headers']);
    expect(loaded.file.provider?.setting).toEqual({});
  });

  it("honours envPath written below [provider], with a warning that says where it belongs", () => {
    const loaded = parseConfigText(`[provider]\nproviderName = "anthropic"\nenvPath = [".env.test"]\n${minimal}`, "/p/perstack.toml");
    expect(loaded.file.envPath).toEqual([".env.test"]);
    expect(loaded.file.provider).toEqual({ providerName: "anthropic" });
    expect(loaded.warnings).toEqual([expect.stringMatching(/^provider\.envPath: envPath belongs at the top level, above \[provider\]/)]);
    const both = parseConfigText(`envPath = [".env"]\n[provider]\nproviderName = "anthropic"\nenvPath = [".env.test"]\n${minimal}`, "/p/perstack.toml");
    expect(both.file.envPath).toEqual([".env"]);
    expect(both.warnings).toEqual([expect.stringMatching(/^provider\.envPath: ignored, because the top-level envPath is set/)]);
  });

  it("takes skill names as free-form strings, as Perstack does, but no control characters", () => {
    const loaded = parseConfigText(`${minimal}[experts."a".skills."@perstack/base"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "@perstack/base"\npick = ["attemptCompletion"]\n`, "/p/perstack.toml");
    expect(Object.keys(loaded.file.experts!.a!.skills!)).toEqual(["@perstack/base"]);
    expect(parseError(`${minimal}[experts."a".skills."bad\\u0007name"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "x"\n`).message).toContain(
      "must be 1 to 128 characters with no control characters",
    );
  });

  it("accepts runtime = \"local\", Perstack's name for the built-in runtime", () => {
    expect(parseConfigText(`runtime = "local"\n${minimal}`, "/p/perstack.toml").file.runtime).toBe("local");
  });

  it("warns about provider settings only Perstack uses", () => {
    const loaded = parseConfigText(`[provider]\nproviderName = "openai"\n[provider.setting]\nname = "custom"\n${minimal}`, "/p/perstack.toml");
    expect(loaded.warnings).toEqual(["provider.setting.name: accepted for Perstack compatibility but not used by this version"]);
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

  it("says every invalid value in perstack.toml's terms, never zod's", () => {
    const cases: Array<[string, string]> = [
      [`maxSteps = 0\n${minimal}`, "maxSteps: must be greater than 0, got number 0"],
      [`maxSteps = 1.5\n${minimal}`, "maxSteps: expected a whole number, got number 1.5"],
      [`maxRetries = -1\n${minimal}`, "maxRetries: must be at least 0, got number -1"],
      [`model = ""\n${minimal}`, "model: must not be empty"],
      [`reasoningBudget = "extreme"\n${minimal}`, 'reasoningBudget: string "extreme" is not a reasoning budget; use "none", "minimal", "low", "medium", "high" or a token count like 8000'],
      [`[experts."Bad Key"]\ninstruction = "x"\n`, 'experts."Bad Key": the name is not a valid expert key'],
    ];
    for (const [text, message] of cases) {
      const error = parseError(text);
      expect(error.message).toBe(`/p/perstack.toml: ${message}`);
      expect(error.message).not.toMatch(/Too small|Too big|Invalid input|Invalid key|expected int\b/);
    }
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
