#!/usr/bin/env bash
# Installs Debian's OpenSSH server for the tests of ssh clone URLs, which start a private sshd of their
# own on a loopback port (test/testkit/sshd.ts). Idempotent. The system's sshd is not started: the
# package's scripts are kept from starting it, so nothing listens beyond what the tests start.
set -euo pipefail

log() { printf '[sshd] %s\n' "$*"; }

if [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null; then
  log "found $(/usr/sbin/sshd -V 2>&1 | head -n 1 || echo /usr/sbin/sshd)"
  exit 0
fi
if [ -z "${KILN_APT_UPDATED:-}" ]; then apt-get update -qq; export KILN_APT_UPDATED=1; fi
log "installing openssh-server from Debian (not started)"
policy=/usr/sbin/policy-rc.d
placed=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && placed=1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
[ -n "$placed" ] && rm -f "$policy"
[ -x /usr/sbin/sshd ] || { log "openssh-server did not install"; exit 1; }
log "installed $(/usr/sbin/sshd -V 2>&1 | head -n 1 || echo /usr/sbin/sshd)"
