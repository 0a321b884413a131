// `perstack run --runtime perstack` with a real MCP server from npm (issue 4, done-when item 2): the package is
// installed when the image is built (the run's proxy allows no package registry, so a working tool proves it),
// its tool is called and the result reaches the model, pick and omit shape the tools the model is offered, and a
// second run with the same skills builds nothing.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { startFakeModel, type FakeModel } from "../support/fake-model-container.js";
import { jsonLines, keyEnv, mainRequests, perstackToml, toolNamesIn, toolResultsIn } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const PACKAGE = "@modelcontextprotocol/server-everything@2026.8.31";

const EXPERTS = `[experts."picker"]
description = "Uses the everything server's picked tools"
instruction = "Use your tools as asked."
[experts."picker".skills."everything"]
type = "mcpStdioSkill"
command = "npx"
packageName = "${PACKAGE}"
pick = ["echo", "get-sum"]

[experts."omitter"]
description = "Uses the everything server without echo"
instruction = "Use your tools as asked."
[experts."omitter".skills."everything"]
type = "mcpStdioSkill"
command = "npx"
packageName = "${PACKAGE}"
omit = ["echo"]
`;

describe.skipIf(!docker)("perstack runtime: MCP skills from npm", () => {
  const engine = docker!;
  let fake: FakeModel;
  let ws: string;

  beforeAll(async () => {
    fake = await startFakeModel(engine, "anthropic");
    ws = makeWorkspace(perstackToml({ baseUrl: fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }), "perstack-skills-");
  }, 300_000);

  afterAll(async () => {
    await fake?.stop();
    if (ws) rmSync(ws, { recursive: true, force: true });
  });

  it("installs the package at build time, calls its tool, the result reaches the model, pick is respected", async () => {
    // Make the first run build the agent image for these skills even when an earlier test run left it behind.
    const plan = await runCli(["run", "picker", "q", "--dry-run"], { cwd: ws, env: keyEnv() });
    expect(plan.exitCode, plan.all).toBe(0);
    const images = (JSON.parse(plan.stdout) as { images: Array<{ role: string; ref: string; dockerfile: string }> }).images;
    const agentImage = images.find((i) => i.role === "agent")!;
    expect(agentImage.dockerfile).toContain(PACKAGE);
    let removed = true;
    try {
      await engine.getImage(agentImage.ref).remove();
    } catch (error) {
      // 404: not there (it will be built); 409: a container of another test uses it (then it is reused).
      removed = (error as { statusCode?: number }).statusCode === 404;
    }

    await fake.script([
      { toolUse: [{ name: "echo", input: { message: "ping from perstack" } }] },
      { text: "Echoed." },
    ]);
    const result = await runCli(["run", "picker", "Echo something", "--json"], { cwd: ws, env: keyEnv(), timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(0);
    const events = jsonLines(result.stdout);
    const builds = events.filter((e) => e.type === "dockerBuildProgress").map((e) => String(e.message));
    if (removed) expect(builds.some((m) => m.includes("server-everything"))).toBe(true);
    expect(events.find((e) => e.type === "completeRun")).toMatchObject({ text: "Echoed." });

    const main = mainRequests(await fake.requests());
    expect(main).toHaveLength(2);
    const offered = toolNamesIn(main[0]);
    expect(offered).toEqual(expect.arrayContaining(["echo", "get-sum"]));
    // pick: only the picked tools are offered (an expert with skills of its own gets no base skill).
    expect([...offered].sort()).toEqual(["echo", "get-sum"]);
    expect(offered.filter((n) => /^(get-env|print-env|get-tiny-image|long-running-operation|annotated-message|trigger-long-running-operation|get-annotated-message|get-resource-reference|toggle-logging|sample-llm)$/.test(n))).toEqual([]);
    expect(toolResultsIn(main[1]).map((r) => r.text).join("\n")).toContain("Echo: ping from perstack");

    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    const call = job!.events.find((e) => e.type === "callTools")!;
    expect(call.toolCalls).toEqual([expect.objectContaining({ skillName: "everything", toolName: "echo" })]);
  }, 900_000);

  it("omit removes a tool in another expert, and a second run with the same skills builds nothing", async () => {
    await fake.script([{ toolUse: [{ name: "get-sum", input: { a: 2, b: 3 } }] }, { text: "Summed." }]);
    const result = await runCli(["run", "omitter", "Add 2 and 3", "--json"], { cwd: ws, env: keyEnv() });
    expect(result.exitCode, result.all).toBe(0);
    const events = jsonLines(result.stdout);
    expect(events.filter((e) => e.type === "dockerBuildProgress")).toEqual([]);
    expect(events.find((e) => e.type === "completeRun")).toMatchObject({ text: "Summed." });

    const main = mainRequests(await fake.requests());
    const offered = toolNamesIn(main[0]);
    expect(offered).not.toContain("echo");
    expect(offered).toContain("get-sum");
    expect(offered.length).toBeGreaterThan(3);
    expect(toolResultsIn(main[1]).map((r) => r.text).join("\n")).toMatch(/5/);
  }, 300_000);
});
