#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser tests when /usr/bin/chromium is missing.
# Idempotent: does nothing when it is there. The tests drive it with playwright-core and never
# download a browser of their own.
set -euo pipefail

log() { printf '[chromium] %s\n' "$*"; }

if [ -x /usr/bin/chromium ]; then
  log "found $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
if [ -z "${KILN_APT_UPDATED:-}" ]; then apt-get update -qq; export KILN_APT_UPDATED=1; fi
log "installing chromium from Debian"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
[ -x /usr/bin/chromium ] || { log "chromium did not install"; exit 1; }
log "installed $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
