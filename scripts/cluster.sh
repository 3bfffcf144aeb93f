#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the single broker of 5672: the same
# RabbitMQ (Debian's package), three nodes with their own names, ports, data and Erlang
# cookie, no Docker. What the chaos suite's cluster scenario and a developer trying
# ONE_AMQP_URLS run against.
#
#   scripts/cluster.sh start          start the nodes missing and join them (idempotent)
#   scripts/cluster.sh stop [N]       stop every node, or node N (1-3) only
#   scripts/cluster.sh start-node N   start node N again (it rejoins by itself)
#   scripts/cluster.sh status         the cluster as node 1 sees it
#   scripts/cluster.sh urls           the ONE_AMQP_URLS value for the three nodes
#   scripts/cluster.sh queues         every queue's leader and members, as JSON
#   scripts/cluster.sh reset          stop every node and delete its data
#
# Nodes are one-cluster-N@localhost, AMQP on 127.0.0.1:$((ONE_CLUSTER_BASE_PORT + N - 1))
# (5701-5703 by default), Erlang distribution on that port + 20000. Data and logs are under
# ONE_CLUSTER_DIR (/tmp/one-cluster by default). guest/guest, loopback only.
set -euo pipefail

BASE_PORT=${ONE_CLUSTER_BASE_PORT:-5701}
DIR=${ONE_CLUSTER_DIR:-/tmp/one-cluster}
RABBIT_BIN=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
NODES=(1 2 3)

[ -x "$RABBIT_BIN/rabbitmq-server" ] || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
}

node_name() { echo "one-cluster-$1@localhost"; }
node_port() { echo $((BASE_PORT + $1 - 1)); }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Everything a node and the CLI aimed at it read: its own cookie (in HOME), config, data.
node_env() {
  local n=$1 home="$DIR/node$1"
  export HOME="$DIR"
  export RABBITMQ_CONF_ENV_FILE=/dev/null
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME=$(node_name "$n")
  export RABBITMQ_NODE_PORT
  RABBITMQ_NODE_PORT=$(node_port "$n")
  export RABBITMQ_DIST_PORT=$((RABBITMQ_NODE_PORT + 20000))
  export RABBITMQ_CONFIG_FILE="$home/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$home/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$home/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$home/mnesia"
  export RABBITMQ_LOG_BASE="$home/log"
  export RABBITMQ_PID_FILE="$home/pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # A node that fails to boot writes its crash dump here, not in the caller's folder.
  export ERL_CRASH_DUMP="$home/erl_crash.dump"
}

ctl() { # ctl N args...: rabbitmqctl aimed at node N
  local n=$1
  shift
  (node_env "$n" && "$RABBIT_BIN/rabbitmqctl" -n "$(node_name "$n")" -q "$@")
}

prepare() {
  local n=$1 home="$DIR/node$1"
  mkdir -p "$home/mnesia" "$home/log"
  if [ ! -f "$DIR/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/.erlang.cookie"
    chmod 400 "$DIR/.erlang.cookie"
  fi
  cat >"$home/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(node_port "$n")
loopback_users.guest = true
cluster_partition_handling = pause_minority
EOF
  echo "[]." >"$home/advanced.config"
  echo "[]." >"$home/enabled_plugins"
}

# The node's Erlang VM answers (its RabbitMQ may still be booting, or paused in a minority:
# cluster_partition_handling = pause_minority stops it while two nodes are away).
running() {
  (node_env "$1" && "$RABBIT_BIN/rabbitmq-diagnostics" -n "$(node_name "$1")" -q ping) >/dev/null 2>&1
}

launch_node() {
  local n=$1
  prepare "$n"
  running "$n" && return 0
  echo "cluster: starting $(node_name "$n") on 127.0.0.1:$(node_port "$n")"
  (node_env "$n" && "$RABBIT_BIN/rabbitmq-server" -detached >/dev/null 2>&1)
}

await_node() {
  local n=$1
  for _ in $(seq 1 180); do
    listening "$(node_port "$n")" && ctl "$n" await_startup >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "cluster: $(node_name "$n") did not start; see $DIR/node$n/log" >&2
  return 1
}

# Nodes that were clustered wait at boot for the peer that stopped last: all are launched
# before any is awaited.
start_nodes() {
  for n in "$@"; do launch_node "$n"; done
  for n in "$@"; do await_node "$n"; done
}

joined() { ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$1")\""; }

join() {
  local n=$1
  joined "$n" && return 0
  echo "cluster: joining $(node_name "$n") to $(node_name 1)"
  local log="$DIR/node$n/log/join.log"
  { ctl "$n" stop_app && ctl "$n" reset && ctl "$n" join_cluster "$(node_name 1)" &&
    ctl "$n" start_app; } >"$log" 2>&1 || { cat "$log" >&2; return 1; }
}

stop_node() {
  local n=$1
  running "$n" || return 0
  echo "cluster: stopping $(node_name "$n")"
  local pid
  pid=$(cat "$DIR/node$n/pid" 2>/dev/null || true)
  ctl "$n" stop >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    if ! running "$n" && { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; }; then return 0; fi
    sleep 0.5
  done
  echo "cluster: $(node_name "$n") still answers after stop" >&2
  return 1
}

urls() {
  local out=()
  for n in "${NODES[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(node_port "$n")/"); done
  (IFS=,; echo "${out[*]}")
}

case "${1:-start}" in
start)
  mkdir -p "$DIR"
  start_nodes "${NODES[@]}"
  for n in 2 3; do join "$n"; done
  echo "cluster: up; ONE_AMQP_URLS=$(urls)"
  ;;
start-node) start_nodes "${2:?node number}" ;;
stop)
  if [ -n "${2:-}" ]; then stop_node "$2"; else for n in 3 2 1; do stop_node "$n"; done; fi
  ;;
status) ctl 1 cluster_status ;;
urls) urls ;;
queues) ctl 1 list_queues name leader members --formatter json ;;
reset)
  for n in 3 2 1; do stop_node "$n"; done
  rm -rf "$DIR"
  ;;
*)
  sed -n '2,17p' "$0" >&2
  exit 2
  ;;
esac
