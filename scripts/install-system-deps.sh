#!/usr/bin/env bash
# Installs the system packages kafkaguard's dev stack and tests need, from Debian's archive, when
# missing: a JDK and Maven (to fetch and run Kafka's published jars), PostgreSQL 15, MariaDB 10.11
# (`dev up --database mariadb`; the package's own service is stopped: kafkaguard runs its own
# server), and kcat (a plain Kafka client the tests use as a witness), wrk (the write-path
# benchmark) and chromium (the console's browser tests drive it with Playwright). Idempotent: installs nothing when all are there.
set -euo pipefail

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)  # kafkaguard's dev MariaDB (its own data dir, port 23306)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # load generator of the write-path benchmark
[ -x /usr/bin/chromium ] || need+=(chromium)  # tests/browser: Playwright drives Debian's chromium, headless

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${need[*]} and apt-get is not available; install them with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: missing ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
echo "installing from Debian's packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
# Debian starts mariadb-server's own service on 3306 where policy-rc.d allows it: stop it, the dev
# stack runs its own server. Nothing to do in containers (policy-rc.d forbids starting services).
if [[ " ${need[*]} " == *" mariadb-server "* ]]; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now mariadb >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    $sudo service mariadb stop >/dev/null 2>&1 || true
  fi
fi
