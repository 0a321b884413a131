#!/bin/bash
# squid cannot reopen the container's stdout as the proxy user, so it logs to files on a tmpfs and this script
# relays them: the access log to stdout (the collector turns it into proxyAccess events), the cache log to stderr.
#
# After the agent exits, the host must know when the access log has been relayed to the end. It sends SIGUSR2: this
# script then makes one request that squid refuses and logs, naming $PERSTACK_LOG_MARK (a secret the agent never
# sees). squid handles events in order, so that line follows every transaction the agent made; once the host reads
# it, nothing of the agent's is still on its way.
#
# With PERSTACK_PROXY_HANDOVER=stdin (how perstack runs it) the container starts before its run's policy exists: the
# first line of stdin is the mark's secret and the rest, to its end, is squid.conf, written to the tmpfs. Until then
# squid does not run and nothing listens.
set -eu
conf=/etc/squid/squid.conf
if [ "${PERSTACK_PROXY_HANDOVER:-}" = stdin ]; then
  IFS= read -r PERSTACK_LOG_MARK || { echo "perstack proxy: stdin closed before a handover arrived" >&2; exit 2; }
  case "$PERSTACK_LOG_MARK" in
    '' | *[!0-9a-f]*) echo "perstack proxy: the handover's first line is not a mark (hex digits)" >&2; exit 2 ;;
  esac
  conf=/tmp/squid.conf
  head -c 1048576 > "$conf"
fi
: > /var/log/squid/access.log
: > /var/log/squid/cache.log
squid -k parse -f "$conf" >/dev/null 2>&1 || { squid -k parse -f "$conf"; exit 2; }
squid -N -f "$conf" &
squid=$!
# --pid: when squid is gone, each tail relays what is left of its file and ends, so the container's output ends
# complete.
tail -n +1 -s 0.05 --pid="$squid" -F /var/log/squid/access.log 2>/dev/null &
tail -n +1 -s 0.05 --pid="$squid" -F /var/log/squid/cache.log >&2 2>/dev/null &
set +e

mark() {
  if exec 3<>/dev/tcp/127.0.0.1/3128; then
    printf 'GET http://perstack-log-mark.invalid/%s HTTP/1.0\r\n\r\n' "${PERSTACK_LOG_MARK:-mark}" >&3
    read -r -t 5 _ <&3
    exec 3<&-
  fi
}
trap mark USR2
trap 'kill -TERM "$squid" 2>/dev/null' TERM INT

# A trapped signal interrupts wait; squid is waited for again until it has really exited.
status=0
while :; do
  wait "$squid"
  status=$?
  kill -0 "$squid" 2>/dev/null || break
done
wait
exit "$status"
