// Whether a test file may use the real Docker engine. In CI a missing engine is a failure, never a silent skip:
// a green CI run must mean the Docker-backed tests ran. Outside CI they skip, with a message saying why.
//
// Use at the top of a test file:
//   const docker = await requireDocker();
//   describe.skipIf(!docker)("...", () => { it("...", async () => { await docker!.ping(); }); });
import Docker from "dockerode";

export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = (env.CI ?? "").trim().toLowerCase();
  return value !== "" && value !== "false" && value !== "0";
}

let probe: Promise<{ docker: Docker } | { reason: string }> | undefined;

/** Pings the engine once per test process (dockerode honours DOCKER_HOST), giving up after `timeoutMs`. */
export function probeDocker(timeoutMs = 5_000): Promise<{ docker: Docker } | { reason: string }> {
  probe ??= (async () => {
    const docker = new Docker();
    const where = process.env.DOCKER_HOST ?? "/var/run/docker.sock";
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        docker.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return { docker };
    } catch (error) {
      return { reason: `Docker engine at ${where} is unreachable: ${(error as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  })();
  return probe;
}

/**
 * The engine, or undefined (after printing why) when it is unreachable outside CI.
 * With CI set, an unreachable engine throws, which fails the test file that asked.
 */
export async function requireDocker(): Promise<Docker | undefined> {
  const result = await probeDocker();
  if ("docker" in result) return result.docker;
  if (inCI()) {
    throw new Error(`${result.reason}. CI=${process.env.CI} requires Docker: start dockerd (see .ci/run).`);
  }
  console.warn(`[skip] ${result.reason}; skipping Docker-backed tests (set CI=true to make this a failure).`);
  return undefined;
}

/**
 * For tests that only mean something as root (chown, root-owned workspaces): they skip for a developer who is not
 * root, but in CI (which .ci/run runs as root) they must run, so a non-root CI fails them instead of skipping.
 */
export function rootOnly(): { skip: boolean; check(): void } {
  const root = process.getuid?.() === 0;
  return {
    skip: !root && !inCI(),
    check: () => {
      if (!root) throw new Error(`CI=${process.env.CI} runs this test as root (see .ci/run); this process is uid ${process.getuid?.()}`);
    },
  };
}

/**
 * What is still on the engine with job `jobId`'s label once its teardown has had `boundMs` to finish: `perstack run`
 * exits as soon as the result is recorded and hands the removal to a teardown process (sandbox/teardown-handoff.ts).
 * An empty list as soon as nothing is left.
 */
export async function leftAfterTeardown(engine: Docker, jobId: string, boundMs = 20_000): Promise<string[]> {
  const filters = { label: [`perstack.job=${jobId}`] };
  const deadline = Date.now() + boundMs;
  for (;;) {
    const [containers, networks, volumes] = await Promise.all([engine.listContainers({ all: true, filters }), engine.listNetworks({ filters }), engine.listVolumes({ filters })]);
    const left = [
      ...containers.map((c) => `container ${(c.Names[0] ?? c.Id).replace(/^\//, "")}`),
      ...networks.map((n) => `network ${n.Name}`),
      ...(volumes.Volumes ?? []).map((v) => `volume ${v.Name}`),
    ];
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `docker inspect` (as JSON text) of the agent, proxy and gateway of the first run recorded under `jobsDir`, taken
 * while all three run: found by the run's labels, or for a run on a claimed warm shell (plan/warm-shell.ts), its
 * sidecars through the shell's claim marker. Empty roles are missing when `boundMs` passes first.
 */
export async function inspectRunSidecars(engine: Docker, jobsDir: string, boundMs: number): Promise<Record<string, string>> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    // All of them: the claim is created, never started.
    const own = await engine.listContainers({ all: true, filters: { label: [`perstack.jobs-dir=${jobsDir}`] } });
    const shells = own.filter((c) => c.Labels["perstack.role"] === "shell-claim").map((c) => c.Labels["perstack.shell"]);
    const shellParts = shells.length > 0 ? await engine.listContainers({ filters: { label: shells.map((id) => `perstack.shell=${id}`) } }) : [];
    const byRole = new Map<string, string>();
    for (const c of [...own, ...shellParts]) if (c.State === "running" && ["agent", "proxy", "gateway"].includes(c.Labels["perstack.role"] ?? "")) byRole.set(c.Labels["perstack.role"]!, c.Id);
    if (byRole.size === 3 || Date.now() > deadline) {
      const out: Record<string, string> = {};
      for (const [role, id] of byRole) out[role] = JSON.stringify(await engine.getContainer(id).inspect());
      return out;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
