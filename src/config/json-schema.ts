// The JSON Schema of perstack.toml, generated from the zod schema that validates it (schema.ts), so editors
// (Taplo / Even Better TOML) complete keys and flag mistakes as the user types. Draft 7: what TOML editors support.
// Keys are strict here, unlike the loader: an editor squiggle on a stray key is the early warning.
import { z } from "zod";
import { perstackConfigSchema } from "./schema.js";

export { SCHEMA_FILE } from "./schema-file.js";

export function perstackTomlJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(perstackConfigSchema, { target: "draft-7", io: "input" }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    title: "perstack.toml",
    description: "Experts, skills, provider and run settings for perstack (a Perstack-compatible sandboxed runner).",
    ...rest,
  };
}

/** The schema as written to SCHEMA_FILE and printed by `perstack schema`. */
export function perstackTomlJsonSchemaText(): string {
  return `${JSON.stringify(perstackTomlJsonSchema(), null, 2)}\n`;
}
