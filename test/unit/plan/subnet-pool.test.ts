import { describe, expect, it } from "vitest";
import {
  DEFAULT_SUBNET_POOL,
  formatCidr,
  overlaps,
  parseIpv4Cidr,
  parseSubnetPool,
  pickFreeSubnets,
  runsThePoolHolds,
  subnetAddresses,
  subnetCount,
  type Ipv4Range,
  type SubnetPool,
} from "../../../src/plan/subnet-pool.js";

function pool(text: string): SubnetPool {
  const parsed = parseSubnetPool(text);
  if ("problem" in parsed) throw new Error(parsed.problem);
  return parsed;
}

/** A deterministic stand-in for Math.random. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe("subnet pool", () => {
  it("the default pool holds 4096 /28 subnets, 2048 runs", () => {
    const p = pool(DEFAULT_SUBNET_POOL);
    expect(p.text).toBe("172.29.0.0/16");
    expect(subnetCount(p)).toBe(4096);
    expect(runsThePoolHolds(p)).toBe(2048);
  });

  it.each([
    ["10.1.2.0/24", 8],
    ["192.168.100.0/27", 1],
    ["100.64.0.0/10", 131072],
  ])("%s holds %i runs", (text, runs) => {
    expect(runsThePoolHolds(pool(text))).toBe(runs);
  });

  it.each([
    ["not-a-cidr", "not an IPv4 range"],
    ["172.29.0.0", "not an IPv4 range"],
    ["172.29.0.0/33", "not an IPv4 range"],
    ["300.1.1.1/16", "not an IPv4 range"],
    ["fd00::/64", "not an IPv4 range"],
    ["172.29.1.0/16", "did you mean 172.29.0.0/16"],
    ["10.0.0.0/28", "too small"],
    ["240.0.0.0/8", "multicast or reserved"],
  ])("%s is refused: %s", (text, problem) => {
    const parsed = parseSubnetPool(text);
    expect("problem" in parsed && parsed.problem).toContain(problem);
  });

  it("parses and prints CIDRs, and tells overlapping ranges", () => {
    const a = parseIpv4Cidr("172.29.0.0/16")!;
    expect(formatCidr(a)).toBe("172.29.0.0/16");
    expect(overlaps(a, parseIpv4Cidr("172.29.255.240/28")!)).toBe(true);
    expect(overlaps(a, parseIpv4Cidr("172.16.0.0/12")!)).toBe(true);
    expect(overlaps(a, parseIpv4Cidr("172.30.0.0/28")!)).toBe(false);
    expect(overlaps(parseIpv4Cidr("10.0.0.0/28")!, parseIpv4Cidr("10.0.0.16/28")!)).toBe(false);
  });

  it("a run's subnet: the gateway first, then the proxy's and the agent's fixed addresses", () => {
    expect(subnetAddresses(parseIpv4Cidr("172.29.4.32/28")!)).toEqual({ gateway: "172.29.4.33", proxy: "172.29.4.34", agent: "172.29.4.35" });
  });
});

describe("pickFreeSubnets", () => {
  const small = pool("10.9.0.0/26"); // four /28s

  it("picks distinct subnets of the pool that no network uses", () => {
    const taken = [parseIpv4Cidr("10.9.0.16/28")!, parseIpv4Cidr("172.17.0.0/16")!];
    const picked = pickFreeSubnets(small, taken, 2, sequence(0.3, 0.3, 0.3, 0.9));
    expect(picked).toHaveLength(2);
    expect(new Set(picked.map(formatCidr)).size).toBe(2);
    for (const subnet of picked) {
      expect(overlaps(subnet, small)).toBe(true);
      expect(taken.some((t) => overlaps(t, subnet))).toBe(false);
    }
  });

  it("finds the last free subnet when random probes miss", () => {
    const taken = ["10.9.0.0/28", "10.9.0.16/28", "10.9.0.48/28"].map((t) => parseIpv4Cidr(t)!);
    expect(pickFreeSubnets(small, taken, 1, () => 0).map(formatCidr)).toEqual(["10.9.0.32/28"]);
  });

  it("a network larger than a subnet takes every subnet it covers", () => {
    expect(pickFreeSubnets(small, [parseIpv4Cidr("10.9.0.0/27")!], 2, sequence(0, 0.5)).map(formatCidr).sort()).toEqual(["10.9.0.32/28", "10.9.0.48/28"]);
  });

  it("returns fewer than asked when the pool is (nearly) full", () => {
    const taken: Ipv4Range[] = ["10.9.0.0/28", "10.9.0.16/28", "10.9.0.32/28"].map((t) => parseIpv4Cidr(t)!);
    expect(pickFreeSubnets(small, taken, 2, Math.random)).toHaveLength(1);
    expect(pickFreeSubnets(small, [parseIpv4Cidr("10.0.0.0/8")!], 2, Math.random)).toEqual([]);
  });

  it("concurrent runs starting at random places rarely collide in the default pool", () => {
    const p = pool(DEFAULT_SUBNET_POOL);
    const firsts = Array.from({ length: 100 }, () => formatCidr(pickFreeSubnets(p, [], 1, Math.random)[0]!));
    expect(new Set(firsts).size).toBeGreaterThan(90);
  });
});
