// The proxy's egress policy (squid/squid.conf.hbs) against the real squid 5.7 of the project's proxy image: which
// requests it refuses, with which perstack-reason, and which it lets through.
//
// Nothing here can reach beyond the test's own containers. Every container sits only on one `internal` network whose
// bridge has no IPv4 address (inhibit_ipv4): the containers' default route points at a gateway nobody holds, so a
// connection the policy allows to a public-looking address (1.2.3.4) fails with "(113) No route to host" (503)
// while a refused one gets 403. Squid's only resolver is a fake DNS server in the test's own client container, which
// records every query, so the test also proves which names squid looks up. The client runs the requests too, and
// stands in for a configured upstream (a model server on a private address).
//
// Three proxies, one per configuration, share the client:
//   - `ipv6`: an allowlist, and squid with a working IPv6 loopback (and no other IPv6), so its IPv6 rules apply, as
//     they would on an engine with IPv6;
//   - `ipv4`: the same squid.conf with IPv6 disabled, as the sandbox runs the proxy (and as Docker networks without
//     IPv6 leave it), where squid ignores IPv6 addresses altogether;
//   - `empty`: nothing allowlisted, only the configured upstreams.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseProxyLogLine, type ProxyDecision } from "../../src/collector/proxy-log.js";
import { buildSandboxPlan, PROXY_PORT } from "../../src/plan/sandbox-plan.js";
import { PROXY_HARDENING } from "../../src/sandbox/run-sandbox.js";
import { render } from "../../src/plan/templates.js";
import { overridesFromEnv, resolveBaseImages } from "../../src/sandbox/base-images.js";
import { ensureImage } from "../../src/sandbox/image-builder.js";
import { ownerIsGone, ownerLabels } from "../../src/sandbox/labels.js";
import { requireDocker } from "../support/docker.js";
import { planInput } from "../support/plan-input.js";

const docker = await requireDocker();

const TEST_LABEL = "perstack.test";
const TEST_ROLE = "proxy-policy";
const RUN = `${process.pid}-${Date.now()}`;
const UPSTREAM_PORT = 8080;
const READY = /Accepting HTTP Socket connections/;

/** /etc/hosts of every proxy (ExtraHosts); upstream.test is added once the client's address is known. */
const HOSTS: Record<string, string> = {
  "public.test": "1.2.3.4",
  "not-allowlisted.test": "1.2.3.4",
  "loopback.test": "127.0.0.1",
  "ten.test": "10.1.2.3",
  "metadata.test": "169.254.169.254",
  "zero.test": "0.0.0.0",
  "cgnat.test": "100.64.0.1",
  "mapped-loopback.test": "::ffff:127.0.0.1",
  "mapped-ten.test": "::ffff:10.1.2.3",
  "mapped-metadata.test": "::ffff:169.254.169.254",
  "nat64.test": "64:ff9b::a00:1",
  "ula.test": "fd00::1",
  "link-local.test": "fe80::1",
  "loopback6.test": "::1",
  "unspecified6.test": "::",
  "sixtofour.test": "2002:a00:1::1",
  "teredo.test": "2001:0:a00:1::1",
  // A name of hex digits only is still a name, not an IPv6 literal.
  decaf: "1.2.3.4",
};

/** The fake DNS server's answers (A and AAAA by address family); every other name is NXDOMAIN. */
const ZONE: Record<string, string[]> = {
  "dns-public.test": ["1.2.3.4"],
  "dns-ten.test": ["10.1.2.3"],
  "dns-metadata.test": ["169.254.169.254"],
  "dns-mixed.test": ["1.2.3.4", "10.0.0.1"],
  "dns-mapped-loopback.test": ["::ffff:127.0.0.1"],
  "dns-ula.test": ["fd00::1"],
  "dns-nat64.test": ["64:ff9b::a00:1"],
};

const ALLOWLIST = [
  "public.test",
  "loopback.test",
  "ten.test",
  "metadata.test",
  "zero.test",
  "cgnat.test",
  "mapped-loopback.test",
  "mapped-ten.test",
  "mapped-metadata.test",
  "nat64.test",
  "ula.test",
  "link-local.test",
  "loopback6.test",
  "unspecified6.test",
  "sixtofour.test",
  "teredo.test",
  ...Object.keys(ZONE),
  "decaf",
];

/**
 * Runs in the client container (node base image). `serve`: the fake DNS server on udp/53 (queries logged as JSON
 * lines on stdout) and the stand-in upstream on tcp/8080. `probe <proxy> <port> <cases>`: sends the requests to the
 * proxy concurrently and prints what came back.
 */
const CLIENT = String.raw`
const net = require("node:net");
const [mode, ...args] = process.argv.slice(1);
if (mode === "serve") {
  const dgram = require("node:dgram");
  const http = require("node:http");
  const zone = JSON.parse(process.env.ZONE);
  const v6bytes = (address) => {
    const [head, tail] = address.includes("::") ? address.split("::") : [address, undefined];
    const groups = (part) => (part ? part.split(":") : []).flatMap((g) => {
      if (!g.includes(".")) return [parseInt(g, 16)];
      const [a, b, c, d] = g.split(".").map(Number);
      return [(a << 8) | b, (c << 8) | d];
    });
    const h = groups(head);
    const t = groups(tail);
    const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill(0), ...t];
    const out = Buffer.alloc(16);
    all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
    return out;
  };
  const dns = dgram.createSocket("udp4");
  dns.on("message", (msg, from) => {
    let off = 12;
    const labels = [];
    while (msg[off] !== 0) { labels.push(msg.subarray(off + 1, off + 1 + msg[off]).toString("latin1")); off += msg[off] + 1; }
    off += 1;
    const name = labels.join(".").toLowerCase();
    const type = msg.readUInt16BE(off);
    console.log(JSON.stringify({ query: name, type, from: from.address }));
    const family = type === 1 ? 4 : type === 28 ? 6 : 0;
    const answers = (zone[name] ?? []).filter((a) => net.isIP(a) === family).map((a) => {
      const data = family === 4 ? Buffer.from(a.split(".").map(Number)) : v6bytes(a);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); rr.writeUInt16BE(type, 2); rr.writeUInt16BE(1, 4); rr.writeUInt32BE(60, 6); rr.writeUInt16BE(data.length, 10);
      return Buffer.concat([rr, data]);
    });
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    header.writeUInt16BE(name in zone ? 0x8180 : 0x8183, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    dns.send(Buffer.concat([header, msg.subarray(12, off + 4), ...answers]), from.port, from.address);
  });
  let listening = 0;
  const ready = () => { if (++listening === 2) console.log(JSON.stringify({ ready: true })); };
  dns.bind(53, "0.0.0.0", ready);
  http.createServer((req, res) => res.end("upstream-ok")).listen(Number(args[0]), "0.0.0.0", ready);
} else {
  const [host, port, json] = args;
  const one = (c) => new Promise((resolve) => {
    const socket = net.connect(Number(port), host);
    let data = "";
    let status = 0;
    const done = (extra) => {
      clearTimeout(timer);
      socket.destroy();
      const sysmsg = /id="sysmsg">[^(]*\((\d+)\) ([^<]*)/.exec(data);
      resolve({ ...c, status, upstream: data.includes("upstream-ok"), ...(sysmsg ? { sysmsg: sysmsg[1] + " " + sysmsg[2] } : {}), ...extra });
    };
    const timer = setTimeout(() => done({ error: "timeout" }), 20000);
    socket.on("error", (e) => done({ error: e.message }));
    socket.on("close", () => done({}));
    socket.on("connect", () => {
      if (c.method === "CONNECT") socket.write("CONNECT " + c.target + " HTTP/1.1\r\nHost: " + c.target + "\r\n\r\n");
      else socket.write("GET " + c.target + " HTTP/1.1\r\nHost: " + new URL(c.target).host + "\r\nConnection: close\r\n\r\n");
    });
    socket.on("data", (chunk) => {
      const first = status === 0;
      data += chunk;
      const line = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (!line) return;
      status = Number(line[1]);
      // Through an established tunnel, ask the upstream for its page.
      if (first && c.method === "CONNECT" && status === 200) socket.write("GET / HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n");
      if (data.includes("upstream-ok") || data.includes("</html>")) done({});
    });
  });
  Promise.all(JSON.parse(json).map(one)).then((results) => console.log(JSON.stringify(results)));
}
`;

type Method = "CONNECT" | "GET";
interface Case {
  method: Method;
  target: string;
  /** The host squid writes in its access log, when it rewrites the literal (e.g. [::ffff:127.0.0.1] -> 127.0.0.1). */
  logged?: string;
}
interface Outcome {
  status: number;
  reason: string;
}
interface Result extends Case {
  status: number;
  upstream: boolean;
  sysmsg?: string;
  error?: string;
}

const connect = (host: string, port = 443): Case => ({ method: "CONNECT", target: `${host}:${port}` });
const get = (url: string): Case => ({ method: "GET", target: url });

const refused = (reason: string): Outcome => ({ status: 403, reason });
const PRIVATE = refused("private-destination");
const NOT_ALLOWLISTED = refused("not-allowlisted");
const IP_LITERAL = refused("ip-literal");
/** Allowed by the policy; the connection then fails for want of a route (nothing is ever sent). */
const ALLOWED_NO_ROUTE: Outcome = { status: 503, reason: "allowlisted" };
/** Allowed by the policy, but no address squid can use: squid without IPv6 skips IPv6 answers and hosts lines. */
const ALLOWED_NO_ADDRESS: Outcome = { status: 500, reason: "allowlisted" };
const UPSTREAM: Outcome = { status: 200, reason: "configured-upstream" };

interface Proxy {
  name: string;
  container: Docker.Container;
  ip: string;
  accessLog: string[];
}

interface Fixture {
  client: Docker.Container;
  clientIp: string;
  dnsLog: Array<{ query: string; type: number; from: string }>;
  proxies: Record<"ipv6" | "ipv4" | "empty", Proxy>;
}

describe.skipIf(!docker)("the proxy's egress policy, against the real squid", () => {
  const d = docker!;
  const labels = { [TEST_LABEL]: TEST_ROLE, [`${TEST_LABEL}.run`]: RUN, ...ownerLabels() };
  const made: { containers: Docker.Container[]; networks: Docker.Network[]; dir?: string } = { containers: [], networks: [] };
  let fx: Fixture;

  beforeAll(async () => {
    await removeLeftovers(d);
    const baseImages = await resolveBaseImages(d, overridesFromEnv());
    const plan = buildSandboxPlan(planInput(`[experts."main"]\ninstruction = "x"\n`, { baseImages }));
    const proxyImage = plan.images.find((image) => image.role === "proxy")!;
    await ensureImage(d, proxyImage, () => {});

    const dir = await mkdtemp(join(tmpdir(), "perstack-proxy-policy-"));
    made.dir = dir;
    const networkName = `perstack-test-proxy-policy-${RUN}`;
    const network = await d.createNetwork({
      Name: networkName,
      Driver: "bridge",
      Internal: true,
      EnableIPv6: false,
      Options: { "com.docker.network.bridge.inhibit_ipv4": "true" },
      CheckDuplicate: true,
      Labels: labels,
    });
    made.networks.push(network);

    // The client resolves nothing itself; a resolver on its own loopback makes sure of it.
    const noResolver = join(dir, "no-resolver.conf");
    await writeFile(noResolver, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n", { mode: 0o644 });
    const client = await d.createContainer({
      Image: baseImages.node.ref,
      Cmd: ["node", "-e", CLIENT, "serve", String(UPSTREAM_PORT)],
      Env: [`ZONE=${JSON.stringify(ZONE)}`],
      Labels: { ...labels, "perstack.role": "proxy-policy-client" },
      HostConfig: {
        NetworkMode: networkName,
        Binds: [`${noResolver}:/etc/resolv.conf:ro`],
        ReadonlyRootfs: true,
        CapDrop: ["ALL"],
        CapAdd: ["NET_BIND_SERVICE"],
        SecurityOpt: ["no-new-privileges"],
      },
    });
    made.containers.push(client);
    const dnsLog: Fixture["dnsLog"] = [];
    await startAndWait(d, client, {
      onStdout: (line) => {
        const entry = parseJsonLine(line) as { query?: string; type: number; from: string } | undefined;
        if (entry?.query !== undefined) dnsLog.push(entry as Fixture["dnsLog"][number]);
      },
      ready: (stream, line) => stream === "stdout" && line.includes('"ready":true'),
    });
    const clientIp = await addressOn(client, networkName);

    // Squid's only resolver is the client's fake DNS server.
    const resolvConf = join(dir, "resolv.conf");
    await writeFile(resolvConf, `nameserver ${clientIp}\noptions timeout:1 attempts:1\n`, { mode: 0o644 });
    const extraHosts = Object.entries({ ...HOSTS, "upstream.test": clientIp }).map(([name, address]) => `${name}:${address}`);
    // Both kinds of configured upstream: an IP literal and a name, each on the client's address and port.
    const upstreams = [
      { host: clientIp, port: UPSTREAM_PORT, scheme: "http", isIp: true },
      { host: "upstream.test", port: UPSTREAM_PORT, scheme: "http", isIp: false },
    ];
    const conf = (allowlist: string[]) =>
      render("squid/squid.conf.hbs", { runId: `proxy-policy-${RUN}`, allowlist, squidDomains: allowlist, upstreams });

    const startProxy = async (name: keyof Fixture["proxies"], squidConf: string, sysctls: Record<string, string>): Promise<Proxy> => {
      const confPath = join(dir, `${name}.squid.conf`);
      await writeFile(confPath, squidConf, { mode: 0o644 });
      // As src/sandbox/run-sandbox.ts starts the proxy, but on the internal network only and with the test's resolver.
      const container = await d.createContainer({
        Image: proxyImage.ref,
        Labels: { ...labels, "perstack.role": `proxy-policy-${name}` },
        HostConfig: {
          NetworkMode: networkName,
          ExtraHosts: extraHosts,
          Binds: [`${confPath}:/etc/squid/squid.conf:ro`, `${resolvConf}:/etc/resolv.conf:ro`],
          Sysctls: sysctls,
          ...PROXY_HARDENING,
        },
      });
      made.containers.push(container);
      const accessLog: string[] = [];
      await startAndWait(d, container, { onStdout: (line) => accessLog.push(line), ready: (stream, line) => stream === "stderr" && READY.test(line) });
      return { name, container, ip: await addressOn(container, networkName), accessLog };
    };
    const noIpv6 = { "net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1" };
    const [ipv6, ipv4, empty] = await Promise.all([
      // IPv6 on the loopback only: squid turns IPv6 on, yet no interface that leads anywhere has an IPv6 address.
      startProxy("ipv6", conf(ALLOWLIST), { "net.ipv6.conf.lo.disable_ipv6": "0" }),
      startProxy("ipv4", conf(ALLOWLIST), noIpv6),
      startProxy("empty", conf([]), noIpv6),
    ]);
    fx = { client, clientIp, dnsLog, proxies: { ipv6, ipv4, empty } };

    // Before any request: the network has no gateway address (its containers' default route leads nowhere), and
    // no proxy has an IPv6 route off its loopback.
    for (const proxy of [ipv6, ipv4, empty]) {
      const routes = await execIn(d, proxy.container, ["cat", "/proc/net/route", "/proc/net/ipv6_route"]);
      expect(routes.exitCode).toBe(0);
      const v6 = routes.stdout.split("\n").filter((line) => /^[0-9a-f]{32} /.test(line));
      expect(v6.filter((line) => !/\slo$/.test(line.trim())), `${proxy.name}: IPv6 routes off the loopback`).toEqual([]);
    }
    const inspected = (await network.inspect()) as { Internal: boolean; Options: Record<string, string> };
    expect(inspected.Internal).toBe(true);
    expect(inspected.Options["com.docker.network.bridge.inhibit_ipv4"]).toBe("true");
  }, 900_000);

  afterAll(async () => {
    for (const container of made.containers.reverse()) await container.remove({ force: true }).catch(() => {});
    for (const network of made.networks) await network.remove().catch(() => {});
    if (made.dir) await rm(made.dir, { recursive: true, force: true });
  });

  /** Sends the cases through the proxy, then checks each answer and the access-log line squid wrote for it. */
  async function expectPolicy(proxy: Proxy, cases: Array<[Case, Outcome]>): Promise<Result[]> {
    const results = await probe(proxy, cases.map(([c]) => c));
    const decisions = await logged(proxy, cases.map(([c]) => c));
    // One line per request, so that a failure shows every difference at once.
    const row = (c: Case, status: number, logged: { status: number; reason?: string | undefined }) =>
      `${c.method} ${c.target} -> ${status}, logged ${logged.status} ${logged.reason ?? "(no reason)"}`;
    expect(cases.map(([c], i) => row(c, results[i]!.status, decisions[i]!))).toEqual(cases.map(([c, wanted]) => row(c, wanted.status, wanted)));
    return results;
  }

  async function probe(proxy: Proxy, cases: Case[]): Promise<Result[]> {
    const run = await execIn(d, fx.client, ["node", "-e", CLIENT, "probe", proxy.ip, String(PROXY_PORT), JSON.stringify(cases)], 60_000);
    expect(run.exitCode, run.stderr).toBe(0);
    return JSON.parse(run.stdout) as Result[];
  }

  /** The access-log decision for each case (squid writes them as it answers; the relay may trail a moment). */
  async function logged(proxy: Proxy, cases: Case[]): Promise<ProxyDecision[]> {
    const find = () =>
      cases.map((c) => {
        const target = hostAndPort(c);
        const host = c.logged ?? target.host;
        return proxy.accessLog
          .map((line) => parseProxyLogLine(line))
          .find((d) => d !== undefined && d.method === c.method && d.domain === host && d.port === target.port);
      });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = find();
      if (found.every((decision) => decision !== undefined)) return found as ProxyDecision[];
      if (Date.now() > deadline) {
        const missing = cases.filter((_, i) => !found[i]).map((c) => `${c.method} ${c.target}`);
        throw new Error(`no access-log line for ${missing.join(", ")}; the log:\n${proxy.accessLog.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const forwardQueries = (proxy: Proxy) => fx.dnsLog.filter((q) => q.from === proxy.ip && (q.type === 1 || q.type === 28));

  // The requests every configuration refuses or allows alike, whatever it allowlists.
  const common = (): Array<[Case, Outcome]> => [
    [connect("1.2.3.4"), IP_LITERAL],
    [connect("127.0.0.1"), IP_LITERAL],
    [connect("169.254.169.254"), IP_LITERAL],
    [{ ...connect("[::ffff:127.0.0.1]"), logged: "127.0.0.1" }, IP_LITERAL],
    [{ ...connect("[::ffff:7f00:1]"), logged: "127.0.0.1" }, IP_LITERAL],
    [{ ...connect("[::ffff:1.2.3.4]"), logged: "1.2.3.4" }, IP_LITERAL],
    [{ ...connect("[64:ff9b::10.0.0.1]"), logged: "64:ff9b::a00:1" }, IP_LITERAL],
    [connect("[::1]"), IP_LITERAL],
    [connect("[fd00::1]"), IP_LITERAL],
    [{ ...connect("2130706433"), logged: "127.0.0.1" }, IP_LITERAL],
    [get("http://[::1]:8080/"), IP_LITERAL],
    [get("http://169.254.169.254/latest/meta-data/"), IP_LITERAL],
    [connect("x.invalid"), NOT_ALLOWLISTED],
    [connect("not-allowlisted.test"), NOT_ALLOWLISTED],
    [connect("upstream.test"), NOT_ALLOWLISTED],
    [get("http://x.invalid/"), NOT_ALLOWLISTED],
    // The configured upstreams, on a private address: plain requests and tunnels, on their port only.
    [get(`http://CLIENT_IP:${UPSTREAM_PORT}/`), UPSTREAM],
    [connect("CLIENT_IP", UPSTREAM_PORT), UPSTREAM],
    [get(`http://upstream.test:${UPSTREAM_PORT}/`), UPSTREAM],
    [connect("upstream.test", UPSTREAM_PORT), UPSTREAM],
    [get("http://CLIENT_IP:9090/"), IP_LITERAL],
    [get("http://upstream.test:9090/"), NOT_ALLOWLISTED],
  ];
  const withClientIp = (cases: Array<[Case, Outcome]>): Array<[Case, Outcome]> =>
    cases.map(([c, o]) => [{ ...c, target: c.target.replace("CLIENT_IP", fx.clientIp) }, o]);

  // Allowlisted names whose answers are refused by every squid, IPv6 or not.
  const privateIpv4: Array<[Case, Outcome]> = [
    [connect("loopback.test"), PRIVATE],
    [connect("ten.test"), PRIVATE],
    [connect("metadata.test"), PRIVATE],
    [connect("zero.test"), PRIVATE],
    [connect("cgnat.test"), PRIVATE],
    [connect("mapped-loopback.test"), PRIVATE],
    [connect("mapped-ten.test"), PRIVATE],
    [connect("mapped-metadata.test"), PRIVATE],
    [connect("dns-ten.test"), PRIVATE],
    [connect("dns-metadata.test"), PRIVATE],
    [connect("dns-mixed.test"), PRIVATE],
  ];
  const allowlistRules: Array<[Case, Outcome]> = [
    [connect("public.test"), ALLOWED_NO_ROUTE],
    [connect("dns-public.test"), ALLOWED_NO_ROUTE],
    [connect("decaf"), ALLOWED_NO_ROUTE],
    [get("http://public.test/"), refused("plain-http-not-allowed")],
    [connect("public.test", 8443), refused("port-not-allowed")],
    [connect("public.test", 80), refused("port-not-allowed")],
  ];
  const ipv6Only = ["nat64.test", "ula.test", "link-local.test", "loopback6.test", "unspecified6.test", "sixtofour.test", "teredo.test"];
  const ipv6OnlyByDns = ["dns-mapped-loopback.test", "dns-ula.test", "dns-nat64.test"];

  it("with IPv6: refuses every private, mapped, NAT64, 6to4, Teredo and special destination; allows public IPv4", async () => {
    const proxy = fx.proxies.ipv6;
    const results = await expectPolicy(proxy, [
      ...withClientIp(common()),
      ...privateIpv4,
      ...allowlistRules,
      ...ipv6Only.map((name): [Case, Outcome] => [connect(name), PRIVATE]),
      ...ipv6OnlyByDns.map((name): [Case, Outcome] => [connect(name), PRIVATE]),
    ]);
    // The allowed connections were attempted and found no route: the policy let them through, the network did not.
    for (const result of results.filter((r) => r.status === 503)) expect(result.sysmsg, result.target).toBe("113 No route to host");
    expect(results.filter((r) => r.status === 200).every((r) => r.upstream)).toBe(true);

    // Names from /etc/hosts are never looked up, nor are names the policy refuses before it needs an address.
    const queried = new Set(forwardQueries(proxy).map((q) => q.query));
    expect([...queried].sort()).toEqual([...Object.keys(ZONE)].sort());
    expect(forwardQueries(proxy).some((q) => q.type === 28)).toBe(true);
  }, 120_000);

  it("without IPv6 (as the sandbox runs it): refuses private IPv4 in every form; IPv6 answers are never used", async () => {
    const proxy = fx.proxies.ipv4;
    const results = await expectPolicy(proxy, [
      ...withClientIp(common()),
      ...privateIpv4,
      ...allowlistRules,
      // Squid without IPv6 skips IPv6 lines of /etc/hosts and asks DNS for A records only: these names have no
      // address it could connect to, so the allowed request fails before any connection.
      ...ipv6Only.map((name): [Case, Outcome] => [connect(name), ALLOWED_NO_ADDRESS]),
      ...ipv6OnlyByDns.map((name): [Case, Outcome] => [connect(name), ALLOWED_NO_ADDRESS]),
    ]);
    for (const result of results.filter((r) => r.status === 503)) expect(result.sysmsg, result.target).toBe("113 No route to host");

    const queries = forwardQueries(proxy);
    expect(queries.every((q) => q.type === 1), "A records only").toBe(true);
    const queried = new Set(queries.map((q) => q.query));
    expect([...queried].sort()).toEqual([...Object.keys(ZONE), ...ipv6Only].sort());
  }, 120_000);

  it("with nothing allowlisted: refuses every name, x.invalid included, without a lookup; the upstreams still work", async () => {
    const proxy = fx.proxies.empty;
    await expectPolicy(proxy, [
      ...withClientIp(common()),
      ...[...ALLOWLIST, "not-allowlisted.test", "x.invalid", "y.invalid"].map((name): [Case, Outcome] => [connect(name), NOT_ALLOWLISTED]),
      [get("http://public.test/"), NOT_ALLOWLISTED],
      [connect("public.test", 8443), NOT_ALLOWLISTED],
    ]);
    expect(forwardQueries(proxy)).toEqual([]);
  }, 120_000);

  it("squid makes no other DNS queries: no reverse lookups of the client's address", () => {
    // Squid's default url_rewrite_extras uses %>A, which would turn on a reverse lookup of each client's address;
    // the template overrides it.
    const other = fx.dnsLog.filter((q) => q.type !== 1 && q.type !== 28);
    expect(other, JSON.stringify(other)).toEqual([]);
    const proxyIps = new Set(Object.values(fx.proxies).map((p) => p.ip));
    expect(fx.dnsLog.every((q) => proxyIps.has(q.from))).toBe(true);
  });
});

function parseJsonLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

function hostAndPort(c: Case): { host: string; port: number } {
  if (c.method === "CONNECT") {
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(c.target)!;
    return { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) };
  }
  const url = new URL(c.target);
  return { host: url.hostname.replace(/^\[|\]$/g, ""), port: url.port ? Number(url.port) : 80 };
}

/** Starts the container and resolves once `ready` sees its line; each stdout line goes to onStdout. */
async function startAndWait(
  docker: Docker,
  container: Docker.Container,
  options: { onStdout(line: string): void; ready(stream: "stdout" | "stderr", line: string): boolean },
): Promise<void> {
  const stream = await container.attach({ stream: true, stdout: true, stderr: true });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(stream, stdout, stderr);
  const tail: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within 30 s: ${tail.join(" | ")}`)), 30_000);
    const watch = (name: "stdout" | "stderr", from: PassThrough) =>
      eachLine(from, (line) => {
        if (name === "stdout") options.onStdout(line);
        tail.push(line);
        if (tail.length > 10) tail.shift();
        if (options.ready(name, line)) {
          clearTimeout(timer);
          resolve();
        }
      });
    watch("stdout", stdout);
    watch("stderr", stderr);
    stream.on("end", () => {
      clearTimeout(timer);
      reject(new Error(`exited before it was ready: ${tail.join(" | ")}`));
    });
  });
  await container.start();
  await ready;
}

function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = "";
  stream.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) if (line.trim()) onLine(line);
  });
}

async function execIn(docker: Docker, container: Docker.Container, cmd: string[], timeoutMs = 30_000): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (chunk: Buffer) => out.push(chunk));
  stderr.on("data", (chunk: Buffer) => err.push(chunk));
  docker.modem.demuxStream(stream, stdout, stderr);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((resolve) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${cmd[0]} did not finish within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

async function addressOn(container: Docker.Container, network: string): Promise<string> {
  const info = await container.inspect();
  const address = info.NetworkSettings.Networks[network]?.IPAddress;
  if (!address) throw new Error(`${info.Name} has no address on ${network}`);
  return address;
}

/** Containers and networks of an earlier run of this file whose process is gone (e.g. killed mid-run). */
async function removeLeftovers(docker: Docker): Promise<void> {
  const filters = JSON.stringify({ label: [`${TEST_LABEL}=${TEST_ROLE}`] });
  for (const info of await docker.listContainers({ all: true, filters })) {
    if (ownerIsGone(info.Labels)) await docker.getContainer(info.Id).remove({ force: true }).catch(() => {});
  }
  for (const info of await docker.listNetworks({ filters })) {
    if (ownerIsGone(info.Labels)) await docker.getNetwork(info.Id).remove().catch(() => {});
  }
}
