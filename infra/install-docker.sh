#!/usr/bin/env bash
# Makes a Docker engine answer on /var/run/docker.sock, for the docker driver and its tests:
# installs Debian's docker.io when dockerd is missing and starts dockerd in the background when the
# socket does not answer, then waits until `docker info` works. Idempotent: does nothing when an
# engine already answers (DOCKER_HOST is honoured). No systemd needed: dockerd runs detached and
# logs to /var/log/kiln-dockerd.log.
set -euo pipefail

log() { printf '[docker] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
# Waits for the dpkg lock: other scripts (services.sh, a parallel CI step) may be installing too.
APT=(apt-get -o DPkg::Lock::Timeout=600)
apt_install() {
  if [ -z "${KILN_APT_UPDATED:-}" ]; then "${APT[@]}" update -qq; export KILN_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}
answers() { have docker && timeout 10 docker info >/dev/null 2>&1; }
wait_until_answers() {
  for _ in $(seq 1 "$1"); do
    answers && return 0
    # dockerd died: no point in waiting for it.
    pgrep -x dockerd >/dev/null 2>&1 || return 1
    sleep 1
  done
  answers
}

if answers; then
  log "the engine already answers"
  exit 0
fi

if ! have dockerd; then
  log "installing docker.io"
  apt_install docker.io
fi

LOG_FILE=/var/log/kiln-dockerd.log
start_dockerd() {
  log "starting dockerd $*"
  # setsid + nohup: the engine outlives this script and the CI step that ran it.
  setsid nohup dockerd "$@" >>"$LOG_FILE" 2>&1 </dev/null &
  started=1
}

# A stale pid file or socket from an engine that died would make the new dockerd refuse to start.
if ! pgrep -x dockerd >/dev/null 2>&1; then rm -f /var/run/docker.pid /var/run/docker.sock; fi

started=''
if pgrep -x dockerd >/dev/null 2>&1; then
  log "dockerd is running but not answering yet; waiting"
else
  start_dockerd
fi
if ! wait_until_answers 60 && [ -z "$started" ]; then
  log "a dockerd that this script did not start does not answer; the end of $LOG_FILE:"
  tail -n 30 "$LOG_FILE" >&2 || true
  exit 1
fi
if ! answers; then
  # Machines without iptables or overlayfs (VMs, nested containers): retry without both rather
  # than give up; containers then have no outbound network and vfs is slow, but the tests need
  # neither.
  if [ -s /var/run/docker.pid ]; then kill "$(cat /var/run/docker.pid)" 2>/dev/null || true; fi
  for _ in $(seq 1 20); do pgrep -x dockerd >/dev/null 2>&1 || break; sleep 0.5; done
  rm -f /var/run/docker.pid /var/run/docker.sock
  start_dockerd --iptables=false --ip6tables=false --storage-driver=vfs
  if ! wait_until_answers 60; then
    log "dockerd did not start; the end of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    exit 1
  fi
fi
log "the engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
