// Everything one run creates on the engine, in creation order, so it can all be removed after success, failure or
// Ctrl-C, and so that whatever could not be removed can be named exactly (with the command that removes it).
import type Docker from "dockerode";
import { ignoreMissing } from "./ignore-missing.js";
import { inTurn } from "./in-turn.js";
import type { TeardownItem, WarmPoolRefill } from "./teardown-handoff.js";

type Kind = "container" | "volume" | "network";

interface Resource {
  kind: Kind;
  name: string;
  /** Removal order: containers, volumes, networks, then the run's slot (run-slots.ts). */
  phase: number;
  remove(): Promise<void>;
}

/** Removal phases, in order (also the teardown process's, teardown-main.ts). */
export const PHASE = { container: 0, volume: 1, network: 2, slot: 3 } as const;

export class SandboxResources {
  /**
   * Warm shells to make once this sandbox is gone (run-sandbox.ts sets it when PERSTACK_WARM_POOL asks for some): the
   * teardown process it is handed to makes them (teardown-handoff.ts).
   */
  refill: WarmPoolRefill | undefined;
  private readonly live: Resource[] = [];
  private readonly children: SandboxResources[] = [];
  private removing: Promise<void> | undefined;

  constructor(private readonly docker: Docker) {}

  /**
   * One run's own set, for runs side by side (`perstack compare`): a run that ends removes only what it created,
   * while this parent still sees, and on Ctrl-C removes, what every run has left.
   */
  child(): SandboxResources {
    const child = new SandboxResources(this.docker);
    this.children.push(child);
    return child;
  }

  container(name: string, handle: Docker.Container): void {
    this.live.push({ kind: "container", name, phase: PHASE.container, remove: () => handle.remove({ force: true, v: false }) });
  }

  volume(name: string): void {
    this.live.push({ kind: "volume", name, phase: PHASE.volume, remove: () => this.docker.getVolume(name).remove() });
  }

  network(name: string, handle: Docker.Network): void {
    this.live.push({ kind: "network", name, phase: PHASE.network, remove: () => handle.remove() });
  }

  /**
   * The run's slot on the engine (a container that never starts): released only once everything else is gone, so
   * the next run that gets it finds the addresses this run used free again.
   */
  slot(name: string, handle: Docker.Container): void {
    this.live.push({ kind: "container", name, phase: PHASE.slot, remove: () => handle.remove({ force: true, v: false }) });
  }

  /**
   * The container that claims a warm shell for the run (warm-shells.ts): removed last, like the slot, so that no
   * part of a used shell ever outlives its claim.
   */
  claim(name: string, handle: Docker.Container): void {
    this.live.push({ kind: "container", name, phase: PHASE.slot, remove: () => handle.remove({ force: true, v: false }) });
  }

  /** How many resources this set lists now: those created after can be removed on their own (removeAfter). */
  mark(): number {
    return this.live.length;
  }

  /**
   * Removes what was created after `mark` (a warm shell that failed and what the run created in it, run-sandbox.ts),
   * in removal order (its claim last); what was created before stays. What fails to go stays listed.
   */
  async removeAfter(mark: number): Promise<void> {
    await this.removePass(this.live.slice(mark));
  }

  /** Removes one resource now (a helper that has done its job). */
  async release(name: string): Promise<void> {
    const resource = this.live.find((r) => r.name === name);
    if (!resource) return;
    await resource.remove().catch(ignoreMissing);
    this.live.splice(this.live.indexOf(resource), 1);
  }

  /** Everything not removed yet, this set's and its children's, with its removal phase (teardown-handoff.ts). */
  teardownItems(): TeardownItem[] {
    return [...this.live.map(({ kind, name, phase }) => ({ kind, name, phase })), ...this.children.flatMap((child) => child.teardownItems())];
  }

  /** A teardown process removes it all now: this set, and its children, hold nothing any more. */
  forgetAll(): void {
    this.live.length = 0;
    for (const child of this.children) child.forgetAll();
  }

  /** What has been created and not (yet) removed. */
  remaining(): Array<{ kind: Kind; name: string }> {
    return [...this.live.map(({ kind, name }) => ({ kind, name })), ...this.children.flatMap((child) => child.remaining())];
  }

  /**
   * Containers first (they hold the volumes and sit on the networks), then volumes, then networks, then the slot;
   * those of one kind side by side. Concurrent callers share one pass; what fails to go stays listed in remaining().
   */
  removeAll(): Promise<void> {
    this.removing ??= Promise.all([this.removePass(this.live), ...this.children.map((child) => child.removeAll())]).then(() => undefined).finally(() => {
      this.removing = undefined;
    });
    return this.removing;
  }

  private async removePass(resources: Resource[]): Promise<void> {
    for (const phase of Object.values(PHASE)) {
      const batch = [...resources].reverse().filter((r) => r.phase === phase);
      const removeOne = async (resource: Resource) => {
        try {
          await resource.remove().catch(ignoreMissing);
          // Another pass (an interrupt's) may have removed it from the list meanwhile.
          const index = this.live.indexOf(resource);
          if (index !== -1) this.live.splice(index, 1);
        } catch {
          // Left in the list: the caller reports it.
        }
      };
      // Containers on the run's networks in turn (in-turn.ts); the rest side by side.
      if (phase === PHASE.container) await inTurn(batch, removeOne);
      else await Promise.all(batch.map(removeOne));
    }
  }
}

/** Commands that remove what is left, for a message the user can paste. */
export function removalCommands(left: Array<{ kind: Kind; name: string }>): string[] {
  const byKind = (kind: Kind) => left.filter((r) => r.kind === kind).map((r) => r.name);
  const commands: string[] = [];
  if (byKind("container").length > 0) commands.push(`docker rm -f ${byKind("container").join(" ")}`);
  if (byKind("volume").length > 0) commands.push(`docker volume rm ${byKind("volume").join(" ")}`);
  if (byKind("network").length > 0) commands.push(`docker network rm ${byKind("network").join(" ")}`);
  return commands;
}
