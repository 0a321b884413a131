// Parses the proxy's access log (logformat "perstack" in squid/squid.conf.hbs) into proxyAccess decisions.
// Only host and port are kept: paths and query strings can carry tokens and never reach the events.

export interface ProxyDecision {
  action: "allowed" | "blocked";
  domain: string;
  port: number;
  reason?: string;
  method: string;
  status: number;
}

const LINE = /^\d+\.\d+\s+(\S+)\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+(\S+))?\s*$/;

export function parseProxyLogLine(line: string): ProxyDecision | undefined {
  const match = LINE.exec(line.trim());
  if (!match) return undefined;
  const [, squidStatus, httpStatus, method, url, note] = match as unknown as [string, string, string, string, string, string | undefined];
  const target = targetOf(method, url);
  if (!target) return undefined;
  const reason = note && note !== "-" ? decodeURIComponent(note.replace(/^perstack-reason[:=]\s*/, "")) : undefined;
  return {
    action: squidStatus.includes("DENIED") || httpStatus === "403" ? "blocked" : "allowed",
    domain: target.host,
    port: target.port,
    ...(reason ? { reason } : {}),
    method,
    status: Number(httpStatus),
  };
}

function targetOf(method: string, url: string): { host: string; port: number } | undefined {
  if (method === "CONNECT") {
    const match = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(url);
    return match ? { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) } : undefined;
  }
  try {
    const parsed = new URL(url);
    const port = parsed.port ? Number(parsed.port) : parsed.protocol === "https:" ? 443 : 80;
    return { host: parsed.hostname.replace(/^\[|\]$/g, ""), port };
  } catch {
    return undefined;
  }
}
