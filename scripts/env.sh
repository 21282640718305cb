# Sourced by the other scripts: where librdkafka is, and the flags that make the binary load it at run time.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$root/.deps/rdkafka.env" ]; then
  # shellcheck disable=SC1091
  . "$root/.deps/rdkafka.env"
fi
SWIFT_LINK_FLAGS=()
if [ -n "${LLMGW_RDKAFKA_LIBDIR:-}" ]; then
  # Without an rpath the binary would load the system's older librdkafka.so.1 at run time.
  SWIFT_LINK_FLAGS=(-Xlinker -rpath -Xlinker "$LLMGW_RDKAFKA_LIBDIR")
fi
TANSU="$root/.deps/tansu"
export TANSU

# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until host:port accepts connections, or fails after $2 seconds.
wait_for_port() {
  local port="$1" limit="${2:-30}" waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    sleep 0.1
    waited=$((waited + 1))
    if [ "$waited" -ge $((limit * 10)) ]; then
      echo "timed out waiting for 127.0.0.1:$port" >&2
      return 1
    fi
  done
}

# Creates every provider topic (interactive and batch lanes) and the dead-letter topic on the broker at 127.0.0.1:$1.
create_topics() {
  local port="$1" topic
  for topic in openai anthropic gemini groq openrouter hf mistral cohere; do
    "$TANSU" topic create --broker "tcp://127.0.0.1:$port" --partitions 6 "llm.jobs.$topic" >/dev/null
    "$TANSU" topic create --broker "tcp://127.0.0.1:$port" --partitions 6 "llm.jobs.$topic.batch" >/dev/null
  done
  "$TANSU" topic create --broker "tcp://127.0.0.1:$port" --partitions 1 "llm.jobs.dead-letter" >/dev/null
}
