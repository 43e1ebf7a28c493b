#!/usr/bin/env bash
# Starts the services the tests need when they are not running: PostgreSQL and RabbitMQ from
# Debian's packages (installed when missing), as on the development machines and CI.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if [ -z "${KILN_APT_UPDATED:-}" ]; then apt-get update -qq; export KILN_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then log "installing postgresql"; apt_install postgresql; fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting postgresql $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 60); do port_open 5432 && break; sleep 1; done
port_open 5432 || { log "postgresql did not start"; exit 1; }

# RabbitMQ
if ! port_open 5672; then
  have rabbitmq-server || { log "installing rabbitmq-server"; apt_install rabbitmq-server; }
  log "starting rabbitmq"
  rabbitmq-server -detached || true
  rabbitmqctl await_startup --timeout 120 >/dev/null 2>&1 || true
fi
for _ in $(seq 1 120); do port_open 5672 && break; sleep 1; done
port_open 5672 || { log "rabbitmq did not start"; exit 1; }

have git || { log "installing git"; apt_install git; }
log "postgresql and rabbitmq are up"
