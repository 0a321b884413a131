// Warm shells (PERSTACK_WARM_POOL, src/plan/warm-shell.ts): a run's teardown leaves the networks, the proxy, the gateway
// and the agent's network namespace of the next run ready, and the next run claims them. A shell serves one run only,
// is removed with it, and is replaced; on a claimed shell the sandbox is as isolated as one built for the run (the
// selftest's probe attacks it from inside), no secret or policy reaches any container's metadata, and a run whose
// perstack process is killed takes its shell with it when the next command takes the run over.
//
// These runs take their subnets from a pool of their own, so their shells are of a spec no other test's runs share.
import type Docker from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { inspectRunSidecars, leftAfterTeardown, requireDocker } from "../support/docker.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const POOL = { PERSTACK_WARM_POOL: "1", PERSTACK_SUBNET_POOL: "10.213.0.0/20" };
const EXPERTS = `[experts."worker"]\ndescription = "Works"\ninstruction = "Do as asked."\n`;

interface Shell {
  id: string;
  /** Role -> container name, for the shell's containers (claim included). */
  parts: Record<string, string>;
  running: boolean;
}

/** Every shell on the engine, by id. */
async function shells(engine: Docker): Promise<Map<string, Shell>> {
  const out = new Map<string, Shell>();
  for (const c of await engine.listContainers({ all: true, filters: { label: ["perstack.shell"] } })) {
    const id = c.Labels["perstack.shell"]!;
    const shell = out.get(id) ?? { id, parts: {}, running: true };
    shell.parts[c.Labels["perstack.role"] ?? "?"] = (c.Names[0] ?? "").replace(/^\//, "");
    if (c.Labels["perstack.role"] !== "shell-claim" && c.State !== "running") shell.running = false;
    out.set(id, shell);
  }
  return out;
}

/** The ids of free shells (all three parts running under their shell names, no claim), once `count` exist. */
async function untilFreeShells(engine: Docker, count: number, boundMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const free = [...(await shells(engine)).values()].filter(
      (s) => s.running && !s.parts["shell-claim"] && s.parts.proxy === `perstack-shell-${s.id}-proxy` && s.parts.gateway && s.parts["agent-network"],
    );
    if (free.length >= count) return free.map((s) => s.id).sort();
    if (Date.now() > deadline) throw new Error(`${count} free warm shell(s) not ready after ${boundMs} ms: ${JSON.stringify([...(await shells(engine)).values()])}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function removeAllShells(engine: Docker): Promise<void> {
  const filters = { label: ["perstack.shell"] };
  for (const c of await engine.listContainers({ all: true, filters })) await engine.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const n of await engine.listNetworks({ filters })) await engine.getNetwork(n.Id).remove().catch(() => undefined);
}

describe.skipIf(!docker)("warm shells", () => {
  const engine = docker!;
  const suite = fakeModelSuite(engine, "perstack-warm-");
  afterAll(() => removeAllShells(engine));

  const workspace = () => suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
  const run = (ws: string, query: string, extra: Record<string, string> = {}) => runCli(["run", "worker", query], { cwd: ws, env: { ...keyEnv(), ...POOL, ...extra }, timeoutMs: 300_000 });
  /** A free shell of the runs' spec: the one an earlier test's run left, or one a run made now. */
  const freeShell = async () => {
    if ((await untilFreeShells(engine, 0)).length === 0) {
      await suite.fake.script([{ text: "Made a shell." }]);
      expect((await run(workspace(), "make a shell")).exitCode).toBe(0);
    }
    return untilFreeShells(engine, 1);
  };

  it("a run's teardown leaves one shell; the next run claims it, uses it once, and a new one replaces it", async () => {
    await removeAllShells(engine);
    await suite.fake.script([{ text: "First." }, { text: "Second." }]);
    const ws = workspace();
    const first = await run(ws, "first");
    expect(first.exitCode, first.all).toBe(0);
    const firstJob = readJobs(ws)[0]!.jobId;
    const [made] = await untilFreeShells(engine, 1);
    // Exactly one, whatever else ran: a free shell belongs to no process, and the next run's sweep leaves it.
    expect(await untilFreeShells(engine, 1)).toEqual([made]);

    const second = await run(ws, "second");
    expect(second.exitCode, second.all).toBe(0);
    const jobs = readJobs(ws);
    expect(jobs.map((j) => j.job.status)).toEqual(["completed", "completed"]);
    const secondJob = jobs.find((j) => j.jobId !== firstJob)!;
    expect(await leftAfterTeardown(engine, secondJob.jobId)).toEqual([]);
    // The claimed shell went with the run; the teardown made the next one.
    const [next] = await untilFreeShells(engine, 1);
    expect(next).not.toBe(made);
    expect([...(await shells(engine)).keys()]).toEqual([next]);
  }, 600_000);

  it("runs that end together leave one shell, not one each", async () => {
    const before = new Set(await freeShell());
    await suite.fake.script([{ text: "Done." }]);
    const since = Math.floor(Date.now() / 1000);
    const results = await Promise.all([1, 2, 3].map((i) => run(workspace(), `burst ${i}`)));
    for (const result of results) expect(result.exitCode, result.all).toBe(0);
    // Every teardown is done (its marker gone), and their refills made one shell between them.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await engine.listContainers({ all: true, filters: { label: ["perstack.role=shell-fill"] } })).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await untilFreeShells(engine, 1);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect([...(await shells(engine)).values()].filter((shell) => !shell.parts["shell-claim"])).toHaveLength(1);
    // One refill at a time (a lock per spec): one shell was made, not one per run to be removed again.
    const events = await engine.getEvents({ since, until: Math.ceil(Date.now() / 1000), filters: { type: ["container"], event: ["create"], label: ["perstack.role=proxy"] } });
    const created = await new Promise<string[]>((resolve) => {
      const names: string[] = [];
      let text = "";
      events.on("data", (chunk: Buffer) => (text += chunk.toString()));
      events.on("end", () => {
        for (const line of text.split("\n").filter(Boolean)) names.push((JSON.parse(line) as { Actor: { Attributes: { name: string } } }).Actor.Attributes.name);
        resolve(names);
      });
    });
    // (The window starts on a whole second: the shell there was before may show in it.)
    expect(created.filter((name) => /^perstack-shell-.+-proxy$/.test(name) && ![...before].some((id) => name.includes(id)))).toHaveLength(1);
  }, 600_000);

  it("on a claimed shell, the real key, the run's token and the policy are in no container's metadata; the agent joins the held namespace", async () => {
    await freeShell();
    await suite.fake.script([{ toolUse: [{ name: "exec", input: { command: "sleep", args: ["4"] } }] }, { text: "Done." }]);
    const ws = workspace();
    const realKey = keyEnv().ANTHROPIC_API_KEY!;
    const running = run(ws, "wait");
    const inspected = await inspectRunSidecars(engine, `${ws}/perstack/jobs`, 60_000);
    const result = await running;
    expect(result.exitCode, result.all).toBe(0);
    expect(Object.keys(inspected).sort()).toEqual(["agent", "gateway", "proxy"]);
    // A shell's sidecars: found through the run's claim (inspectRunSidecars), renamed to the run's names.
    expect(inspected.proxy).toMatch(/"Name":"\/perstack-[a-z0-9]+-proxy"/);
    expect(inspected.proxy).toMatch(/perstack\.shell/);
    expect(inspected.agent).toMatch(/"NetworkMode":"container:[0-9a-f]{64}"/);
    const token = /ANTHROPIC_API_KEY=([0-9a-f]{64})/.exec(inspected.agent!)?.[1];
    expect(token).toBeDefined();
    for (const [role, text] of Object.entries(inspected)) expect(text, role).not.toContain(realKey);
    for (const role of ["proxy", "gateway"]) {
      expect(inspected[role]).not.toContain(token!);
      expect(inspected[role]).not.toMatch(/http_access|PERSTACK_LOG_MARK|upstream/);
    }
  }, 600_000);

  it("a shell whose gateway cannot take its configuration is given up: the run builds its own sidecars and completes", async () => {
    const [broken] = await freeShell();
    // The gateway writes its handover into a tmpfs only it may write to; made read-only, the handover fails and the
    // gateway exits, as it would if it had died between the claim's look and the handover.
    const gateway = engine.getContainer(`perstack-shell-${broken}-gateway`);
    const exec = await gateway.exec({ Cmd: ["chmod", "0500", "/etc/perstack/gateway"], User: "1000", AttachStdout: true, AttachStderr: true });
    await new Promise<void>((resolve, reject) => exec.start({}, (error, stream) => (error ? reject(error) : stream ? (stream.on("end", () => resolve()), stream.resume()) : resolve())));
    expect((await exec.inspect()).ExitCode).toBe(0);
    await suite.fake.script([{ text: "Done without the shell." }]);
    const ws = workspace();
    const result = await run(ws, "on a broken shell");
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain("Done without the shell.");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    const statuses = job!.events.filter((e) => e.type === "dockerContainerStatus").map((e) => `${String(e.service)}: ${String(e.status)}`);
    expect(statuses.some((line) => /^gateway: warm shell unusable \(the provider gateway exited at start/.test(line)), statuses.join("\n")).toBe(true);
    // The broken shell went at once, its parts and networks; the run's own sandbox went with the run.
    expect([...(await shells(engine)).keys()]).not.toContain(broken);
    expect(await engine.listNetworks({ filters: { name: [`perstack-shell-${broken}`] } })).toEqual([]);
    expect(await leftAfterTeardown(engine, job!.jobId)).toEqual([]);
    // And the pool is whole again.
    expect((await untilFreeShells(engine, 1)).filter((id) => id !== broken)).toHaveLength(1);
  }, 600_000);

  it("a comparison's runs build their own sandboxes, so that none starts ahead: the free shell stays free", async () => {
    const [free] = await freeShell();
    await suite.fake.script([{ text: "Compared." }]);
    const compared = await runCli(["compare", "worker", "compare", "--runtimes", "perstack"], { cwd: workspace(), env: { ...keyEnv(), ...POOL }, timeoutMs: 300_000 });
    expect(compared.exitCode, compared.all).toBe(0);
    expect(await untilFreeShells(engine, 1)).toEqual([free]);
  }, 600_000);

  it("on a claimed shell, `perstack selftest` passes every isolation check: the probe attacks it from inside", async () => {
    const selftest = () => runCli(["selftest", "--json"], { cwd: makeWorkspace("", "perstack-selftest-cwd-"), env: POOL, timeoutMs: 600_000 });
    // The selftest's plan differs from a run's (no model server): its first run leaves a shell of its own spec.
    const before = new Set((await shells(engine)).keys());
    const cold = await selftest();
    expect(cold.exitCode, cold.all).toBe(0);
    const deadline = Date.now() + 60_000;
    let mine: string | undefined;
    while (!mine && Date.now() < deadline) {
      mine = (await untilFreeShells(engine, 1)).find((id) => !before.has(id));
      if (!mine) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(mine, "the selftest's teardown made a shell of its spec").toBeDefined();

    const warm = await selftest();
    const report = JSON.parse(warm.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean }> };
    expect(report.checks.filter((c) => !c.ok), warm.stderr).toEqual([]);
    expect(warm.exitCode).toBe(0);
    const names = report.checks.map((c) => c.name).join("\n");
    for (const topic of [/DNS through resolv\.conf/, /DNS through Docker's resolver/, /no route to the host through docker0/, /internal network's gateway/, /no IPv6/, /proxy refuses a name not allowlisted/]) {
      expect(names).toMatch(topic);
    }
    // It ran on that shell: the shell is gone with it.
    const deadline2 = Date.now() + 30_000;
    while ((await shells(engine)).has(mine!) && Date.now() < deadline2) await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await shells(engine)).has(mine!)).toBe(false);
  }, 900_000);

  it("a run on a claimed shell whose perstack process is killed: the take-over records the run and removes the shell", async () => {
    await freeShell();
    await suite.fake.script([{ text: "Working.", toolUse: [{ name: "exec", input: { command: "sleep", args: ["3"], timeout: 60000 } }] }, { text: "All done." }]);
    const ws = workspace();
    const child = runCli(["run", "worker", "work", "--json"], { cwd: ws, env: { ...keyEnv(), ...POOL }, timeoutMs: 120_000 });
    const jobId = await new Promise<string>((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) if (line.includes('"callTools"')) resolve((JSON.parse(line) as { jobId: string }).jobId);
      });
      void child.then((result) => reject(new Error(`the run ended before it was killed: ${result.all}`)));
    });
    const [claim] = await engine.listContainers({ all: true, filters: { label: [`perstack.job=${jobId}`, "perstack.role=shell-claim"] } });
    expect(claim, "the run claimed a shell").toBeDefined();
    const shellId = claim!.Labels["perstack.shell"]!;
    child.kill("SIGKILL");
    await child;
    // Once the agent is done, the next command collects the rest of the run from the containers' logs: the shell's
    // gateway's metered calls too, found through the claim.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [agent] = await engine.listContainers({ all: true, filters: { label: [`perstack.job=${jobId}`, "perstack.role=agent"] } });
      if (agent?.State !== "running" || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const listed = await runCli(["jobs", "--json"], { cwd: ws, env: POOL, timeoutMs: 60_000 });
    expect(listed.exitCode, listed.all).toBe(0);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    expect(job!.allEvents.filter((e) => e.type === "providerUsage").length).toBeGreaterThan(0);
    expect(await leftAfterTeardown(engine, jobId)).toEqual([]);
    expect((await shells(engine)).has(shellId)).toBe(false);
    expect(await engine.listNetworks({ filters: { label: [`perstack.shell=${shellId}`] } })).toEqual([]);
  }, 600_000);
});
