#!/bin/sh
# Same contract as the official node image's entrypoint: `docker run <image> -e "..."` or `docker run <image> app.js`
# runs node, while `docker run <image> bash` runs bash.
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
