#!/usr/bin/env bash
# Runs the test suites against a Redis and a Tansu broker of their own, on free ports, then tears them down.
# Extra arguments go to `swift test` (for example `--filter EndToEnd`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

work="$(mktemp -d /tmp/llmgw-test.XXXXXX)"
redis_port="$(free_port)"
broker_port="$(free_port "$redis_port")"
pids=()
cleanup() {
  # Gateway processes of this run that a failed test could not stop (they carry this run's work directory).
  local pid
  for pid in $(pgrep -f llm-gateway || true); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "LLMGW_TEST_WORKDIR=$work"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --logfile "$work/redis.log" &
pids+=($!)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$broker_port" --advertised-listener-url "tcp://127.0.0.1:$broker_port" >"$work/broker.log" 2>&1 &
pids+=($!)
wait_for_port "$redis_port"
wait_for_port "$broker_port"
create_topics "$broker_port"

export LLMGW_TEST_REDIS_PORT="$redis_port"
export LLMGW_TEST_BROKERS="127.0.0.1:$broker_port"
export LLMGW_TEST_BINARY="$(swift build --show-bin-path)/llm-gateway"
export LLMGW_TEST_TANSU="$TANSU"
export LLMGW_TEST_WORKDIR="$work"
echo "test stack: redis 127.0.0.1:$redis_port, broker 127.0.0.1:$broker_port" >&2
swift test --no-parallel "${SWIFT_LINK_FLAGS[@]}" "$@"
