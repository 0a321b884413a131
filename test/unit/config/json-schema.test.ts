// Issue 9, done-when 5: the JSON Schema that `perstack schema` prints is generated from the zod schema, validates
// the repository's perstack.toml.example, rejects a wrong type, and the copy that ships is current.
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { perstackTomlJsonSchema, perstackTomlJsonSchemaText, SCHEMA_FILE } from "../../../src/config/json-schema.js";
import { runCli } from "../../support/cli.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const example = () => parseToml(readFileSync(`${ROOT}perstack.toml.example`, "utf8")) as Record<string, unknown>;

describe("perstack schema", () => {
  const validate = new Ajv({ allErrors: true, strict: false }).compile(perstackTomlJsonSchema());

  it("validates perstack.toml.example", () => {
    const ok = validate(example());
    expect(validate.errors ?? [], JSON.stringify(validate.errors)).toEqual([]);
    expect(ok).toBe(true);
  });

  it("rejects a wrong type, a misspelt key and a bad runtime name, pointing at the key", () => {
    expect(validate({ ...example(), maxSteps: "ten" })).toBe(false);
    expect(validate.errors?.some((e) => e.instancePath === "/maxSteps" && e.keyword === "type")).toBe(true);
    expect(validate({ ...example(), modle: "x" })).toBe(false);
    expect(validate.errors?.some((e) => e.keyword === "additionalProperties" && e.params.additionalProperty === "modle")).toBe(true);
    expect(validate({ ...example(), runtime: "claude" })).toBe(false);
    const experts = { a: { instruction: 42 } };
    expect(validate({ experts })).toBe(false);
    expect(validate.errors?.some((e) => e.instancePath === "/experts/a/instruction")).toBe(true);
  });

  it("accepts Perstack's forms: @perstack/base as a skill name, runtime local", () => {
    const doc = {
      runtime: "local",
      experts: { x: { instruction: "hi", skills: { "@perstack/base": { type: "mcpStdioSkill", command: "npx", packageName: "@perstack/base", pick: ["attemptCompletion"] } } } },
    };
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
  });

  it("the copy in the package is the one the CLI prints (regenerate with `perstack schema --out " + SCHEMA_FILE + "`)", async () => {
    expect(readFileSync(`${ROOT}${SCHEMA_FILE}`, "utf8")).toBe(perstackTomlJsonSchemaText());
    const printed = await runCli(["schema"], { cwd: ROOT });
    expect(printed.exitCode).toBe(0);
    expect(printed.stdout).toBe(perstackTomlJsonSchemaText().trimEnd());
  });
});
