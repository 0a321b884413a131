// Many runs on one engine, on the real engine: runs' networks get distinct small subnets from the pool even when
// they choose at the same moment, a full pool is a clear error, and run slots make a run wait, then go on when a
// slot frees, and give up at once on an interrupt.
import type Docker from "dockerode";
import { afterAll, describe, expect, it } from "vitest";
import { SubnetPoolExhaustedError } from "../../src/errors.js";
import type { NetworkPlan } from "../../src/plan/sandbox-plan.js";
import { parseSubnetPool, type SubnetPool } from "../../src/plan/subnet-pool.js";
import { overridesFromEnv, resolveBaseImages } from "../../src/sandbox/base-images.js";
import { ownerLabels } from "../../src/sandbox/labels.js";
import { createRunNetworks } from "../../src/sandbox/run-networks.js";
import { acquireRunSlot } from "../../src/sandbox/run-slots.js";
import { SandboxResources } from "../../src/sandbox/sandbox-resources.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();
const TEST = `capacity${Date.now().toString(36)}`;
const LABEL = "perstack.test";
const labels = { "perstack.managed": "true", [LABEL]: TEST, ...ownerLabels() };

/** A pool of four /28s in a range nothing else on this engine uses. */
function testPool(): SubnetPool {
  const parsed = parseSubnetPool("10.231.7.0/26");
  if ("problem" in parsed) throw new Error(parsed.problem);
  return parsed;
}

function networksFor(run: string): NetworkPlan[] {
  return [
    { role: "internal", name: `perstack-${TEST}-${run}-internal`, internal: true, enableIPv6: false, options: { "com.docker.network.bridge.inhibit_ipv4": "true" } },
    { role: "egress", name: `perstack-${TEST}-${run}-egress`, internal: false, enableIPv6: false, options: {} },
  ];
}

async function leftovers(engine: Docker): Promise<string[]> {
  const filters = { label: [`${LABEL}=${TEST}`] };
  const containers = await engine.listContainers({ all: true, filters });
  const networks = await engine.listNetworks({ filters });
  return [...containers.map((c) => c.Names[0] ?? c.Id), ...networks.map((n) => n.Name)];
}

describe.skipIf(!docker)("runs sharing one engine", () => {
  const engine = docker!;
  const all: SandboxResources[] = [];
  const track = () => {
    const resources = new SandboxResources(engine);
    all.push(resources);
    return resources;
  };
  afterAll(async () => {
    await Promise.all(all.map((r) => r.removeAll()));
  });

  it("two runs choosing at the same moment, from the same start, get distinct subnets; a third finds the pool full", async () => {
    const pool = testPool();
    // Both start their search at the same place: the second's creates collide and it must move on.
    const sameStart = () => 0;
    const [a, b] = await Promise.all([
      createRunNetworks(engine, networksFor("a"), pool, labels, track(), sameStart),
      createRunNetworks(engine, networksFor("b"), pool, labels, track(), sameStart),
    ]);
    const subnets = [...a, ...b].map((n) => n.subnet);
    expect(new Set(subnets).size).toBe(4);
    for (const subnet of subnets) expect(subnet).toMatch(/^10\.231\.7\.\d+\/28$/);
    const internal = await engine.getNetwork(a[0]!.plan.name).inspect();
    expect(internal.IPAM?.Config?.[0]).toMatchObject({ Subnet: a[0]!.subnet, Gateway: a[0]!.gateway });
    expect(internal.Internal).toBe(true);

    await expect(createRunNetworks(engine, networksFor("c"), pool, labels, track())).rejects.toThrow(SubnetPoolExhaustedError);
    await expect(createRunNetworks(engine, networksFor("c"), pool, labels, track())).rejects.toThrow(/PERSTACK_SUBNET_POOL/);

    await Promise.all(all.map((r) => r.removeAll()));
    expect(await leftovers(engine)).toEqual([]);
  });

  it("a run waits while every slot is held, goes on when one frees, and stops waiting on an interrupt", async () => {
    const image = (await resolveBaseImages(engine, overridesFromEnv())).debian.ref;
    const request = (resources: SandboxResources, signal: AbortSignal, onWaiting: (running: number) => void = () => {}) => ({
      limit: 1,
      image,
      labels,
      resources,
      signal,
      onWaiting,
    });
    // Another test's slots would make this one wait for them too: none may be held now.
    const held = await engine.listContainers({ all: true, filters: { label: ["perstack.role=run-slot"] } });
    expect(held.map((c) => c.Names[0])).toEqual([]);

    const first = track();
    await acquireRunSlot(engine, request(first, new AbortController().signal));
    const second = track();
    const waits: number[] = [];
    let acquired = false;
    const waiting = acquireRunSlot(engine, request(second, new AbortController().signal, (running) => waits.push(running))).then(() => {
      acquired = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(waits).toEqual([1]);
    expect(acquired).toBe(false);

    const interrupt = new AbortController();
    const third = acquireRunSlot(engine, request(track(), interrupt.signal));
    await new Promise((resolve) => setTimeout(resolve, 300));
    interrupt.abort();
    await expect(third).rejects.toThrow("interrupted");

    const released = Date.now();
    await first.removeAll();
    await waiting;
    // The slot's removal wakes the waiting run at once (Docker's events), not at its next look.
    expect(Date.now() - released).toBeLessThan(1_500);
    expect(second.remaining().map((r) => r.name)).toEqual(["perstack-slot-1"]);
    await second.removeAll();
    expect(await leftovers(engine)).toEqual([]);
  });
});
