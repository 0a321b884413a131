#!/bin/sh
# squid cannot reopen the container's stdout as the proxy user, so it logs to files on a tmpfs and this script
# relays them: the access log to stdout (the collector turns it into proxyAccess events), the cache log to stderr.
set -eu
: > /var/log/squid/access.log
: > /var/log/squid/cache.log
tail -n +1 -F /var/log/squid/access.log 2>/dev/null &
tail -n +1 -F /var/log/squid/cache.log >&2 2>/dev/null &
squid -k parse -f /etc/squid/squid.conf >/dev/null 2>&1 || { squid -k parse -f /etc/squid/squid.conf; exit 2; }
exec squid -N -f /etc/squid/squid.conf
