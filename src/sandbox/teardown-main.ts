// The detached process that removes a finished run's sandbox after `perstack run` has exited (teardown-handoff.ts).
// It reads one TeardownRequest on stdin, removes containers (one after another, in-turn.ts), then volumes, networks
// and the run's slot (each kind side by side, as SandboxResources does), retrying briefly what the engine refuses for a moment; then, with
// PERSTACK_WARM_POOL, makes the warm shells the next run will claim (warm-shells.ts), and exits. It is bounded in
// time; whatever it leaves is swept by the next perstack command.
// First, so that dockerode's SSH and gRPC clients load only if used (every run starts one of these processes).
import "./docker-extras-lazy.js";
import { connectDocker } from "./docker-client.js";
import { inTurn } from "./in-turn.js";
import { PHASE } from "./sandbox-resources.js";
import { clearTeardownMarker, parseTeardownRequest, type TeardownItem, type TeardownRequest } from "./teardown-handoff.js";

const GIVE_UP_MS = 60_000;
const ATTEMPTS = 5;
const RETRY_MS = 300;

async function readRequest(): Promise<TeardownRequest | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return parseTeardownRequest(Buffer.concat(chunks).toString("utf8"));
}

async function main(): Promise<void> {
  setTimeout(() => process.exit(1), GIVE_UP_MS).unref();
  const request = await readRequest();
  if (!request) return;
  try {
    const docker = await connectDocker();
    const remove = (item: TeardownItem): Promise<unknown> =>
      item.kind === "container" ? docker.getContainer(item.name).remove({ force: true, v: false }) : item.kind === "volume" ? docker.getVolume(item.name).remove() : docker.getNetwork(item.name).remove();
    const phases = [...new Set(request.items.map((item) => item.phase))].sort((a, b) => a - b);
    for (const phase of phases) {
      const items = request.items.filter((item) => item.phase === phase);
      // Containers that share the run's networks go in turn (in-turn.ts); the rest side by side.
      if (phase === PHASE.container) await inTurn(items, (item) => removeWithRetries(() => remove(item)));
      else await Promise.all(items.map((item) => removeWithRetries(() => remove(item))));
    }
    // Once the run's sandbox is gone, so that making the next one never competes with it. Best effort: a shell that
    // cannot be made now leaves the next run to build its own.
    if (request.refill) {
      const { refillWarmShells } = await import("./warm-shells.js");
      await refillWarmShells(docker, request.refill.spec, request.refill.size).catch(() => undefined);
    }
  } finally {
    clearTeardownMarker(request.ownerPid);
  }
}

/** Gone (or never there) is done; anything else is tried again a few times: a network can be busy for a moment. */
async function removeWithRetries(remove: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    try {
      await remove();
      return;
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return;
      if (attempt < ATTEMPTS) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

await main().catch(() => {
  process.exitCode = 1;
});
