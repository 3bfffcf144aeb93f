#!/usr/bin/env bash
# Start Postgres and RabbitMQ on 127.0.0.1 where they are not listening yet (installing
# them from Debian's packages if they are missing), then wait until both answer.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
wait_for() {
  local port=$1 name=$2
  for _ in $(seq 1 90); do listening "$port" && return 0; sleep 1; done
  echo "ensure-services: $name is still not listening on 127.0.0.1:$port" >&2
  return 1
}

if ! listening 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # Local development trusts loopback connections, as the project's machines do.
  grep -q "^host all all 127.0.0.1/32 trust" "$hba" ||
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  echo "ensure-services: starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_for 5432 PostgreSQL
fi

if ! listening 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached
  wait_for 5672 RabbitMQ
fi

# A listening broker may still be booting: wait until it accepts AMQP work.
for _ in $(seq 1 60); do
  rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
  sleep 1
done
echo "ensure-services: Postgres and RabbitMQ are up"
