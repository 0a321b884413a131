// Hostile values (quotes, newlines, `$`, spaces) through every template: each is escaped or refused, so no value
// can change the meaning of a generated Dockerfile, squid.conf or compose.yaml.
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { renderExport, QUERY_PLACEHOLDER } from "../../../src/plan/export-files.js";
import { buildSandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { readTemplateFile, render, shellArg, squidToken, yamlString } from "../../../src/plan/templates.js";
import { planInput } from "../../support/plan-input.js";

const HOSTILE = [`it's "quoted"`, "line1\nline2", "$HOME ${SECRET} $(rm -rf /) `id`", "spaces and\ttabs", "back\\slash", "# not a comment", "--flag"];

describe("template helpers", () => {
  it("shellArg single-quotes and refuses line breaks", () => {
    expect(shellArg("a b")).toBe("'a b'");
    expect(shellArg(`it's`)).toBe(`'it'\\''s'`);
    expect(() => shellArg("a\nb")).toThrow(/line break/);
  });

  it("yamlString round-trips every hostile value through YAML with compose's $ escaping", () => {
    for (const value of HOSTILE) {
      const parsed = parseYaml(`key: ${yamlString(value)}`) as { key: string };
      expect(parsed.key.replace(/\$\$/g, "$")).toBe(value);
    }
  });

  it("squidToken refuses anything squid would read as syntax", () => {
    expect(squidToken(".example.com")).toBe(".example.com");
    for (const value of ["a b", "a\nhttp_access allow all", "a#b", "x;y", '"q"']) expect(() => squidToken(value)).toThrow(/unsafe/);
  });

  it("squid.conf refuses a hostile host even if validation upstream were bypassed", () => {
    expect(() =>
      render("squid/squid.conf.hbs", { runId: "r", allowlist: ["x"], squidDomains: ["evil.com\nhttp_access allow all"], upstreams: [] }),
    ).toThrow(/unsafe squid.conf value/);
  });

  it("the agent Dockerfile refuses a package spec with a line break", () => {
    expect(() =>
      render(
        "templates/agent.Dockerfile.hbs",
        { baseImage: "b", runtime: "r", hasCaBundle: false, cliSpec: "x", skills: [{ name: "s", dir: "s", packageSpec: "p\nRUN evil", packageName: "p" }] },
        { runtime: "" },
      ),
    ).toThrow(/line break/);
  });
});

describe("the perstack runtime's partial", () => {
  it("interpolates nothing, so no value can reach it", () => {
    expect(readTemplateFile("templates/runtimes/perstack.hbs")).not.toContain("{{");
  });
});

describe("export with hostile values", () => {
  const instruction = HOSTILE.join(" | ");
  const toml = `[experts."main"]\ninstruction = ${JSON.stringify(instruction)}\n[experts."main".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "srv"\nrequiredEnv = ["S_KEY"]\n`;
  const plan = buildSandboxPlan(planInput(toml, { query: QUERY_PLACEHOLDER, workspace: "/work $pace/it's", perstackDir: "/elsewhere/perstack" }));
  const files = Object.fromEntries(renderExport(plan).map((f) => [f.path, f.content]));
  const compose = parseYaml(files["compose.yaml"]!) as {
    services: { agent: { command: string[]; environment: Record<string, string>; volumes: string[] } };
  };

  it("writes the files docker-compose needs", () => {
    expect(Object.keys(files).sort()).toEqual(
      ["agent/Dockerfile", "agent/agent-entrypoint.sh", "agent/link-skill-bin.mjs", "allowlist.txt", "compose.yaml", "proxy/Dockerfile", "proxy/entrypoint.sh", "resolv.conf", "squid.conf"].sort(),
    );
  });

  it("keeps the instruction intact (compose $ escaping only) and the query as ${PERSTACK_QUERY}", () => {
    const command = compose.services.agent.command;
    const prompt = command[command.indexOf("--append-system-prompt") + 1]!;
    expect(prompt.replace(/\$\$/g, "$")).toBe(instruction);
    expect(command[command.length - 1]).toBe("${PERSTACK_QUERY}");
  });

  it("references secrets by name only and escapes the workspace default path", () => {
    expect(compose.services.agent.environment.ANTHROPIC_API_KEY).toBe("${ANTHROPIC_API_KEY}");
    expect(compose.services.agent.environment.S_KEY).toBe("${S_KEY}");
    expect(compose.services.agent.volumes[0]).toBe("${PERSTACK_WORKSPACE:-/work $$pace/it's}:/workspace:rw");
  });
});
