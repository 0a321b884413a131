// Where the package ships perstack.toml's JSON Schema; apart from json-schema.ts, which needs zod to make it.
export const SCHEMA_FILE = "schema/perstack.schema.json";
