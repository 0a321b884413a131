// EFFECTS: at most N runs have a sandbox on one Docker engine at once, whichever perstack process (or host) started
// them. A run holds a slot while its sandbox exists: an empty, never started container named perstack-slot-<k>,
// k in 1..N. The engine's unique container names make claiming a slot atomic across processes, the slot lives and
// dies with the run's other containers (SandboxResources removes it last), and a slot whose process died is stale:
// its owner labels say so (labels.ts), as for any leftover of a crashed run.
import type Docker from "dockerode";
import { SandboxError } from "../errors.js";
import { MANAGED_LABEL, ownerIsGone } from "./labels.js";
import { ignoreMissing } from "./ignore-missing.js";
import { claimName } from "./name-claim.js";
import type { SandboxResources } from "./sandbox-resources.js";

export const SLOT_ROLE = "run-slot";
const SLOT_NAME = /^\/?perstack-slot-(\d+)$/;
/** How often a waiting run looks again even without hearing of a freed slot (a slot of a crashed run frees none). */
const RECHECK_MS = 2_000;

export interface SlotRequest {
  limit: number;
  /** An image the engine has (the run's proxy image): a container needs one, though this one never starts. */
  image: string;
  labels: Record<string, string>;
  resources: SandboxResources;
  signal: AbortSignal;
  /** Called once, when the run has to wait: how many slots are held. */
  onWaiting(running: number): void;
  random?: () => number;
}

/** Claims a slot, waiting as long as all are held; the slot is released with the run's resources. */
export async function acquireRunSlot(docker: Docker, request: SlotRequest): Promise<void> {
  const random = request.random ?? Math.random;
  let waited = false;
  let events: NodeJS.ReadableStream | undefined;
  try {
    for (;;) {
      throwIfAborted(request.signal);
      const held = await heldSlots(docker);
      if (held.size < request.limit) {
        const free = shuffled(
          Array.from({ length: request.limit }, (_, i) => i + 1).filter((k) => !held.has(k)),
          random,
        );
        for (const k of free) {
          if (await claim(docker, k, request)) return;
        }
        // Every free slot went to another run between the look and the claim: look again at once.
        continue;
      }
      if (!waited) {
        waited = true;
        request.onWaiting(held.size);
      }
      // Listen before the next look, so a slot freed in between is not missed.
      events ??= await docker.getEvents({ filters: { type: ["container"], event: ["destroy"], label: [`perstack.role=${SLOT_ROLE}`] } });
      await slotFreed(events, request.signal);
    }
  } finally {
    (events as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined)?.destroy?.();
  }
}

/** The slot numbers held now; slots of processes that are gone are removed on the way. */
async function heldSlots(docker: Docker): Promise<Set<number>> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`perstack.role=${SLOT_ROLE}`] } });
  const held = new Set<number>();
  for (const info of containers) {
    const k = Number(SLOT_NAME.exec(info.Names[0] ?? "")?.[1]);
    if (!Number.isInteger(k) || k < 1) continue;
    if (ownerIsGone(info.Labels)) {
      await docker.getContainer(info.Id).remove({ force: true }).catch(ignoreMissing);
      continue;
    }
    held.add(k);
  }
  return held;
}

/** True when this run now holds slot k; false when another run has it. */
async function claim(docker: Docker, k: number, request: SlotRequest): Promise<boolean> {
  const name = `perstack-slot-${k}`;
  const container = await claimName(docker, name, request.image, { ...request.labels, [MANAGED_LABEL]: "true", "perstack.role": SLOT_ROLE });
  if (!container) return false;
  request.resources.slot(name, container);
  return true;
}

function slotFreed(events: NodeJS.ReadableStream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      events.off("data", done);
      events.off("end", done);
      events.off("error", done);
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    const onAbort = () => {
      done();
      reject(new SandboxError("interrupted"));
    };
    const timer = setTimeout(done, RECHECK_MS);
    events.on("data", done);
    events.on("end", done);
    events.on("error", done);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** `items` in a random order (Fisher-Yates): runs that look at once try different ones first. */
export function shuffled<T>(items: T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new SandboxError("interrupted");
}
