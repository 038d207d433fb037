#!/usr/bin/env bash
# Run a command in a fresh network namespace that has only loopback, so that
# nothing a test starts (the IPFS node's DNS look-ups, a stray client) can
# reach any address but 127.0.0.0/8.  Falls back to running the command plainly
# (with a warning) where the OS allows no namespace.
set -euo pipefail
if [ "${HFSCRAPER_IN_NETNS:-}" = 1 ]; then exec "$@"; fi
inner='ip link set lo up && HFSCRAPER_IN_NETNS=1 exec "$@"'
if unshare -rn true 2>/dev/null; then
  exec unshare -rn bash -c "$inner" hermetic "$@"
elif [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n bash -c "$inner" hermetic "$@"
else
  echo "hermetic.sh: no network namespace available here; running without isolation" >&2
  exec "$@"
fi
