#!/usr/bin/env bash
# Runs the whole gateway on 127.0.0.1: Redis, the Tansu broker (in-memory), the mock provider, a worker for
# every provider, and the ingress. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
binary="$(swift build --show-bin-path)/llm-gateway"
run_dir=".run"
mkdir -p "$run_dir"

pick_port() {
  # The default port when it is free, otherwise any free one.
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then free_port; else echo "$1"; fi
}
redis_port="$(pick_port 6379)"
broker_port="$(pick_port 9092)"
mock_port="$(pick_port 3030)"
http_port="${LLMGW_HTTP_PORT:-3020}"
worker_port="$(pick_port 3021)"

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping…"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --logfile "$PWD/$run_dir/redis.log" &
pids+=($!)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$broker_port" --advertised-listener-url "tcp://127.0.0.1:$broker_port" >"$run_dir/broker.log" 2>&1 &
pids+=($!)
wait_for_port "$redis_port"
wait_for_port "$broker_port"
create_topics "$broker_port"

export LLMGW_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export LLMGW_KAFKA_BROKERS="127.0.0.1:$broker_port"
export LLMGW_HTTP_PORT="$http_port"
export LLMGW_WORKER_HTTP_PORT="$worker_port"
# The admin API (/admin/keys, /admin/usage) gets a token of this run unless one is set.
export LLMGW_ADMIN_TOKEN="${LLMGW_ADMIN_TOKEN:-dev-admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}"
mock="http://127.0.0.1:$mock_port"
# Providers without a real key go to the mock provider, which speaks their wire format.
for id in OPENAI ANTHROPIC GEMINI GROQ OPENROUTER HF MISTRAL COHERE; do
  key_var="${id}_API_KEY"
  if [ -z "${!key_var:-}" ]; then
    export "${id}_API_KEY=mock-key"
    case "$id" in
      OPENAI|HF|MISTRAL) export "${id}_BASE_URL=$mock/v1" ;;
      GROQ) export "${id}_BASE_URL=$mock/openai/v1" ;;
      OPENROUTER) export "${id}_BASE_URL=$mock/api/v1" ;;
      *) export "${id}_BASE_URL=$mock" ;;
    esac
  fi
done

"$binary" mock-provider --port "$mock_port" >"$run_dir/mock.log" 2>&1 &
pids+=($!)
"$binary" worker --provider openai,anthropic,gemini,groq,openrouter,hf,mistral,cohere >"$run_dir/worker.log" 2>&1 &
pids+=($!)
"$binary" ingress >"$run_dir/ingress.log" 2>&1 &
pids+=($!)
wait_for_port "$http_port"
until curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; do sleep 0.2; done
# Auth is on: a development key for the curl below (its secret exists only in this output).
dev_key="$("$binary" keys create --name "make-run $(date -u +%FT%TZ)" --json 2>>"$run_dir/keys.log" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')"
(umask 077 && printf '%s\n' "$dev_key" >"$run_dir/dev-key")

cat <<TXT

llm-gateway is running on http://127.0.0.1:$http_port (logs in $run_dir/; the development key is also in
$run_dir/dev-key). Try:

  curl -s http://127.0.0.1:$http_port/gateway/query \\
    -H 'Authorization: Bearer $dev_key' \\
    -H 'Content-Type: application/json' \\
    -d '{"provider":"openai","prompt":"Hello from the queue"}'

Admin API token (LLMGW_ADMIN_TOKEN): $LLMGW_ADMIN_TOKEN
  curl -s http://127.0.0.1:$http_port/admin/usage -H "Authorization: Bearer \$LLMGW_ADMIN_TOKEN"

Ctrl-C stops everything.
TXT
wait
