// PURE: container settings the plan and the Engine API calls share, kept apart from the planner so that what only
// creates containers (a warm shell, sandbox/sidecar-containers.ts) loads no more than it needs.

/** The proxy's writable places. Docker ignores tmpfs "mode" when the directory exists in the image, so they
 *  belong to Debian's static proxy user (uid/gid 13) instead. */
export const PROXY_TMPFS: Record<string, string> = {
  "/var/log/squid": "rw,nosuid,nodev,size=64m,uid=13,gid=13",
  "/var/spool/squid": "rw,nosuid,nodev,size=16m,uid=13,gid=13",
  "/run": "rw,nosuid,nodev,size=16m,uid=13,gid=13",
  "/tmp": "rw,nosuid,nodev,size=16m,uid=13,gid=13",
};

/** No IPv6 in the sandbox's containers at all: no link-local or other v6 path around the proxy. */
export const NO_IPV6_SYSCTLS: Record<string, string> = {
  "net.ipv6.conf.all.disable_ipv6": "1",
  "net.ipv6.conf.default.disable_ipv6": "1",
};
