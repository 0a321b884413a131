// The README is the front door: every command and every option the CLI takes is in it (with an example nearby, by
// the README's own convention of one table row or code line per option). Hidden options (test hooks) are left out.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../../src/cli/main.js";

const README = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

function commands(command: Command, prefix: string[] = []): Array<{ path: string[]; command: Command }> {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    return [{ path, command: sub }, ...commands(sub, path)];
  });
}

describe("the README names every command and option", () => {
  const program = buildProgram();
  const all = commands(program);

  it.each(all.map(({ path }) => [path.join(" ")]))("perstack %s", (path) => {
    expect(README).toContain(`perstack ${path}`);
  });

  it.each(all.flatMap(({ path, command }) => command.options.filter((o) => o.long && o.long !== "--help" && !o.hidden).map((o) => [path.join(" "), o.long!])))("perstack %s %s", (_path, flag) => {
    expect(README).toContain(flag);
  });
});
