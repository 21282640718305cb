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

# Prints a TCP port that is free on 127.0.0.1 and not one of the arguments. It lies below the kernel's ephemeral
# range: a port from bind(0) lies in it, and an outgoing connection of the stack could take it as its source port
# before the server binds it ("Address already in use").
free_port() {
  python3 - "$@" <<'PY'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
taken = {int(a) for a in sys.argv[1:]}
for _ in range(1000):
    port = random.randrange(10000, low) if low > 11000 else 0
    if port in taken:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
else:
    sys.exit("no free port")
PY
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
