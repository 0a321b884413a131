// The proxy's allowlist for one run: every skill's allowedDomains across the expert and all experts reachable
// through delegates, the provider's API hosts (or the host of a custom baseUrl) and the hosts the runtime needs.
import { domainPatternProblem, isWildcard, patternCovers } from "../config/domain-pattern.js";
import type { ResolvedExpert } from "../config/resolve.js";
import { InvalidOptionError } from "../errors.js";

export interface AllowlistSource {
  pattern: string;
  /** Why the entry is there, e.g. `experts."writer".skills."search"` or `provider anthropic`. */
  origin: string;
}

/**
 * An upstream the user configured explicitly (provider baseUrl). It is reached on its own port, and may sit on a
 * private or host address (a local model server), which the proxy otherwise refuses.
 */
export interface ExplicitUpstream {
  host: string;
  port: number;
  scheme: "http" | "https";
  /** The host is an IP literal rather than a name. */
  isIp: boolean;
}

export function skillDomains(experts: ResolvedExpert[]): AllowlistSource[] {
  const out: AllowlistSource[] = [];
  for (const expert of experts) {
    for (const [name, skill] of Object.entries(expert.config.skills ?? {})) {
      if (skill.type === "interactiveSkill") continue;
      for (const pattern of skill.allowedDomains ?? []) {
        out.push({ pattern, origin: `experts."${expert.key}".skills."${name}"` });
      }
      if (skill.type === "mcpSseSkill") {
        out.push({ pattern: new URL(skill.endpoint).hostname, origin: `experts."${expert.key}".skills."${name}".endpoint` });
      }
    }
  }
  return out;
}

/** Sorted, de-duplicated entries: an exact host covered by a wildcard entry is dropped. */
export function mergeAllowlist(sources: AllowlistSource[]): string[] {
  const patterns = new Set<string>();
  for (const source of sources) {
    const problem = domainPatternProblem(source.pattern);
    if (problem) throw new InvalidOptionError(`${source.origin}: allowlist entry "${source.pattern}" ${problem}`);
    patterns.add(source.pattern);
  }
  const wildcards = [...patterns].filter(isWildcard);
  const kept = [...patterns].filter(
    (pattern) => !wildcards.some((w) => w !== pattern && patternCovers(w, isWildcard(pattern) ? pattern.slice(2) : pattern)),
  );
  return kept.sort();
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export function explicitUpstream(baseUrl: string | undefined): ExplicitUpstream | undefined {
  if (!baseUrl) return undefined;
  const url = new URL(baseUrl);
  const scheme = url.protocol === "https:" ? "https" : "http";
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const port = url.port ? Number(url.port) : scheme === "https" ? 443 : 80;
  const isIp = IPV4.test(host) || host.includes(":");
  if (!isIp && !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(host)) {
    throw new InvalidOptionError(`provider.setting.baseUrl: host "${host}" is not a valid host name`);
  }
  return { host, port, scheme, isIp };
}
