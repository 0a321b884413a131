#!/bin/sh
# The runtime's native configuration (settings, MCP servers, instructions) arrives read-only at
# /etc/perstack/home; CLIs expect it in a writable HOME, which is a fresh tmpfs in every run.
set -eu
if [ -d /etc/perstack/home ]; then
  cp -R /etc/perstack/home/. "$HOME"/
fi
exec "$@"
