// Which warm shells a run may claim (plan/warm-shell.ts): exactly those made for what the run would have made itself.
// A spec passed between processes (the teardown request) is only believed when its signature is that of its content.
import { describe, expect, it } from "vitest";
import { buildSandboxPlan } from "../../../src/plan/sandbox-plan.js";
import { parseSubnetPool, type SubnetPool } from "../../../src/plan/subnet-pool.js";
import { parseShellSpec, shellIdOfProxyName, shellNames, shellSpecOf } from "../../../src/plan/warm-shell.js";
import { parseTeardownRequest } from "../../../src/sandbox/teardown-handoff.js";
import { planInput } from "../../support/plan-input.js";

const toml = `
[provider]
providerName = "anthropic"
[experts."main"]
description = "Main"
instruction = "Be useful."
`;

const pool = (text: string) => parseSubnetPool(text) as SubnetPool;
const plan = (overrides: Parameters<typeof planInput>[1] = {}, text = toml) => buildSandboxPlan(planInput(text, overrides));

describe("warm shell specs", () => {
  it("are the same for runs that differ only in what a run hands over (query, run ids, instruction)", () => {
    const a = shellSpecOf(plan(), pool("172.29.0.0/16"))!;
    const b = shellSpecOf(plan({ runId: "other-run-id-0", query: "another" }, toml.replace("Be useful.", "Be brief.")), pool("172.29.0.0/16"))!;
    expect(a.signature).toMatch(/^[0-9a-f]{16}$/);
    expect(b.signature).toBe(a.signature);
    // Nothing of the run in it: no names, no policy, no secret.
    expect(JSON.stringify(a)).not.toMatch(/Be useful|other-run-id|allowlist|squid/);
  });

  it("differ when anything fixed at a shell's creation does: the images, the subnet pool", () => {
    const base = shellSpecOf(plan(), pool("172.29.0.0/16"))!;
    // (A local model server's base URL is the gateway's config, handed over: the same shells serve it.)
    const local = plan({}, toml.replace('providerName = "anthropic"', 'providerName = "anthropic"\n[provider.setting]\nbaseUrl = "http://host.docker.internal:11434/"'));
    expect(shellSpecOf(local, pool("172.29.0.0/16"))!.signature).toBe(base.signature);
    expect(shellSpecOf(plan(), pool("10.213.0.0/20"))!.signature).not.toBe(base.signature);
    const otherImages = plan({ baseImages: { debian: { role: "debian", ref: "debian:bookworm-slim", id: "sha256:1" }, node: { role: "node", ref: "node:22-bookworm-slim", id: "sha256:2" } } });
    expect(shellSpecOf(otherImages, pool("172.29.0.0/16"))!.signature).not.toBe(base.signature);
  });

  it("read back from another process only when whole and signed for what they say", () => {
    const spec = shellSpecOf(plan(), pool("172.29.0.0/16"))!;
    expect(parseShellSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
    // Any change of content under the same signature (an image swapped in the request) is refused.
    expect(parseShellSpec({ ...spec, proxy: { ...spec.proxy, image: "attacker/proxy:latest" } })).toBeUndefined();
    expect(parseShellSpec({ ...spec, agentNetwork: { ...spec.agentNetwork, sysctls: {} } })).toBeUndefined();
    expect(parseShellSpec({ ...spec, networks: spec.networks.slice(0, 1) })).toBeUndefined();
    expect(parseShellSpec({ ...spec, proxy: { ...spec.proxy, extraHosts: [1] } })).toBeUndefined();
    expect(parseShellSpec("spec")).toBeUndefined();
  });

  it("ride along in a teardown request, with a pool size from 0 to 8", () => {
    const spec = shellSpecOf(plan(), pool("172.29.0.0/16"))!;
    const request = (refill: unknown) => parseTeardownRequest(JSON.stringify({ ownerPid: 42, items: [], refill }));
    expect(request({ spec, size: 1 })?.refill).toEqual({ spec, size: 1 });
    expect(request({ spec, size: 0 })?.refill).toEqual({ spec, size: 0 });
    // A bad refill is none: the sandbox is still removed.
    for (const bad of [{ spec, size: 9 }, { spec, size: -1 }, { spec, size: 1.5 }, { spec: { ...spec, signature: "0000000000000000" }, size: 1 }, "refill"]) {
      const parsed = request(bad);
      expect(parsed, JSON.stringify(bad).slice(0, 60)).toEqual({ ownerPid: 42, items: [] });
    }
  });

  it("names: a shell's parts, and its id back from its proxy's name only while unclaimed", () => {
    const names = shellNames("mx2abc0123456789abcd");
    expect(names).toMatchObject({ proxy: "perstack-shell-mx2abc0123456789abcd-proxy", claim: "perstack-shell-mx2abc0123456789abcd-claim" });
    expect(names.network("internal")).toBe("perstack-shell-mx2abc0123456789abcd-internal");
    expect(shellIdOfProxyName("/perstack-shell-mx2abc0123456789abcd-proxy")).toBe("mx2abc0123456789abcd");
    expect(shellIdOfProxyName("perstack-mx2run-proxy")).toBeUndefined();
  });
});
