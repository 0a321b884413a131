// Handlebars templates are data: Dockerfiles, squid.conf and compose.yaml are rendered from files in templates/,
// squid/ and compose/. Every helper that interpolates a value either escapes it for its target syntax or refuses
// it, so a hostile value (quotes, newlines, `$`, spaces) cannot change the meaning of a generated file.
import { readFileSync } from "node:fs";
import Handlebars from "handlebars";
import { packagePath } from "../package-root.js";

const hb = Handlebars.create();

/** A single shell word in single quotes; values with newlines or NUL are refused rather than escaped. */
export function shellArg(value: unknown): string {
  const text = String(value);
  if (/[\n\r\0]/.test(text)) throw new Error(`refusing to put a line break or NUL into a shell command: ${JSON.stringify(text)}`);
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A YAML double-quoted scalar that docker-compose will not interpolate (`$` doubled). */
export function yamlString(value: unknown): string {
  return JSON.stringify(String(value).replace(/\$/g, "$$$$"));
}

/** A token for squid.conf: only characters squid reads literally in ACL values. */
export function squidToken(value: unknown): string {
  const text = String(value);
  if (!/^[A-Za-z0-9.:_\-[\]]+$/.test(text)) throw new Error(`refusing unsafe squid.conf value ${JSON.stringify(text)}`);
  return text;
}

hb.registerHelper("shellArg", (value: unknown) => new hb.SafeString(shellArg(value)));
hb.registerHelper("json", (value: unknown) => new hb.SafeString(JSON.stringify(value)));
hb.registerHelper("yaml", (value: unknown) => new hb.SafeString(yamlString(value)));
hb.registerHelper("squid", (value: unknown) => new hb.SafeString(squidToken(value)));

const cache = new Map<string, Handlebars.TemplateDelegate>();

function template(relativePath: string): Handlebars.TemplateDelegate {
  let compiled = cache.get(relativePath);
  if (!compiled) {
    // noEscape: these are not HTML; values go through the helpers above instead.
    compiled = hb.compile(readFileSync(packagePath(relativePath), "utf8"), { noEscape: true, strict: true });
    cache.set(relativePath, compiled);
  }
  return compiled;
}

export function readTemplateFile(relativePath: string): string {
  return readFileSync(packagePath(relativePath), "utf8");
}

export function render(relativePath: string, data: object, partials: Record<string, string> = {}): string {
  return template(relativePath)(data, { partials });
}
