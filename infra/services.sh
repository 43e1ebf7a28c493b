#!/usr/bin/env bash
# Starts the services the tests need when they are not running: PostgreSQL and RabbitMQ from
# Debian's packages (installed when missing), as on the development machines and CI, and makes sure
# the tests can log in to PostgreSQL. PG_PORT (5432) picks another local cluster.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if [ -z "${KILN_APT_UPDATED:-}" ]; then apt-get update -qq; export KILN_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# PostgreSQL: the cluster listening on PG_PORT, and a login the tests can use there.
PG_PORT="${PG_PORT:-5432}"
# How the tests connect (test/testkit/services.ts): the postgres user, no password, over loopback.
PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres"
HBA_MARK='# kiln tests (infra/services.sh): the postgres user logs in over loopback without a password'
pg_cluster() { pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2; exit }'; }
pg_login() { PGCONNECT_TIMEOUT=5 psql "$PG_URL" -w -Atqc 'select 1' >/dev/null 2>&1; }

# A Debian cluster refuses a password-less login unless pg_hba.conf trusts it: when the tests'
# login fails, trust the postgres user on loopback, above every other rule (the first match wins),
# and reload. Nothing changes where the login already works, and the rules go in only once.
ensure_pg_login() {
  pg_login && return 0
  local version cluster hba tmp
  read -r version cluster <<<"$(pg_cluster)"
  if [ -z "$version" ]; then
    log "the tests cannot log in at $PG_URL, and no cluster of this machine listens on port $PG_PORT"
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    log "the tests cannot log in at $PG_URL: run this script as root to let them, or add"
    log "'host all postgres 127.0.0.1/32 trust' at the top of cluster $version/$cluster's pg_hba.conf"
    exit 1
  fi
  hba=$(pg_conftool -s "$version" "$cluster" show hba_file 2>/dev/null || echo "/etc/postgresql/$version/$cluster/pg_hba.conf")
  if ! grep -qxF "$HBA_MARK" "$hba"; then
    log "letting the postgres user log in over loopback without a password ($hba)"
    tmp=$(mktemp)
    printf '%s\n' "$HBA_MARK" 'host all postgres 127.0.0.1/32 trust' 'host all postgres ::1/128 trust' >"$tmp"
    cat "$hba" >>"$tmp"
    cat "$tmp" >"$hba" # written over, not moved: the file keeps its owner and mode
    rm -f "$tmp"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
  for _ in $(seq 1 20); do pg_login && return 0; sleep 0.5; done
  log "the tests still cannot log in at $PG_URL after $hba trusted them: see the cluster's log"
  exit 1
}

if ! port_open "$PG_PORT"; then
  if ! have pg_lsclusters || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
    log "installing postgresql"
    apt_install postgresql
  fi
  read -r version cluster <<<"$(pg_cluster)"
  if [ -z "$version" ]; then
    log "no PostgreSQL cluster of this machine is set to listen on port $PG_PORT (pg_lsclusters)"
    exit 1
  fi
  log "starting postgresql $version/$cluster"
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
fi
for _ in $(seq 1 60); do port_open "$PG_PORT" && break; sleep 1; done
port_open "$PG_PORT" || { log "postgresql did not start"; exit 1; }
have psql || { log "installing postgresql-client"; apt_install postgresql-client; }
ensure_pg_login

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
