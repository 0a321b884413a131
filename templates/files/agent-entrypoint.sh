#!/bin/sh
# The runtime's native configuration (settings, MCP servers, instructions) arrives read-only at
# /etc/perstack/home; CLIs expect it in a writable HOME, which is a fresh tmpfs in every run.
set -eu
# The built-in engine's image holds Node's compile cache, made at build time as root (uid 0). Node looks for it under a
# name that ends in the uid, and the agent's uid is chosen per run: link it under this uid's name, in /tmp.
if [ -d /opt/perstack/compile-cache ] && [ -z "${NODE_COMPILE_CACHE:-}" ]; then
  mkdir -p /tmp/.node-compile-cache
  uid=$(id -u)
  for cache in /opt/perstack/compile-cache/*-0; do
    if [ -d "$cache" ]; then ln -sfn "$cache" "/tmp/.node-compile-cache/$(basename "${cache%-0}")-$uid"; fi
  done
  export NODE_COMPILE_CACHE=/tmp/.node-compile-cache
fi
if [ -d /etc/perstack/home ]; then
  cp -R /etc/perstack/home/. "$HOME"/
fi
# The host starts this container while the proxy and the provider gateway are still starting, and sends one line on
# stdin once they are ready (then closes it, so the command sees an empty stdin). Without an open stdin (docker-compose,
# a plain docker run) the read ends at once. The built-in engine reads the line itself, once it has started up.
if [ "${PERSTACK_START_GATE:-}" != "engine" ]; then
  read -r _ || true
fi
exec "$@"
