// allowedDomains entries end up in squid.conf, so they are validated strictly here rather than escaped later:
// an exact host name or a leading "*." wildcard, lowercase ASCII, nothing else.

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Returns why `pattern` is not an acceptable allowlist entry, or undefined when it is. */
export function domainPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "is empty";
  if (/\s/.test(pattern)) return "contains whitespace";
  if (/[^\x21-\x7e]/.test(pattern)) return "contains non-ASCII characters; write the punycode (xn--) form of the name";
  if (/[A-Z]/.test(pattern)) return "must be lowercase";
  if (pattern.includes("://")) return "must be a host name, not a URL (drop the scheme)";
  if (pattern.includes("/")) return "must be a host name without a path";
  if (pattern.includes(":")) return "must be a host name without a port";
  if (pattern === "*") return "is a bare wildcard; name the domain, e.g. *.example.com";
  const wildcard = pattern.startsWith("*.");
  const host = wildcard ? pattern.slice(2) : pattern;
  if (host.includes("*")) return "may only use a wildcard as a leading '*.' label";
  if (host.endsWith(".")) return "must not end with a dot";
  if (IPV4.test(host) || host.startsWith("[")) return "is an IP address; the proxy only allows host names";
  if (host.length > 253) return "is longer than 253 characters";
  const labels = host.split(".");
  if (labels.length < 2) return "must have at least two labels, e.g. example.com";
  for (const label of labels) {
    if (!LABEL.test(label)) return `has an invalid label "${label}"`;
  }
  if (/^\d+$/.test(labels[labels.length - 1] ?? "")) return "has a numeric top-level label";
  if (wildcard && labels.length < 2) return "is a wildcard over a top-level domain";
  return undefined;
}

export function isWildcard(pattern: string): boolean {
  return pattern.startsWith("*.");
}

/** True when `host` is covered by `pattern` (a wildcard covers its apex and every name below it). */
export function patternCovers(pattern: string, host: string): boolean {
  if (!isWildcard(pattern)) return pattern === host;
  const base = pattern.slice(2);
  return host === base || host.endsWith(`.${base}`);
}
