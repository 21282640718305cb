#!/usr/bin/env bash
# Runs the test suites against a Redis and a Tansu broker of their own, on free ports, then tears them down.
# Extra arguments go to `swift test` (for example `--filter EndToEnd`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

work="$(mktemp -d /tmp/llmgw-test.XXXXXX)"
redis_port="$(free_port)"
broker_port="$(free_port)"
pids=()
cleanup() {
  # Gateway processes that a failed test could not stop.
  pkill -KILL -f "$(swift build --show-bin-path 2>/dev/null)/llm-gateway" 2>/dev/null || true
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
