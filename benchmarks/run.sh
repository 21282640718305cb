#!/usr/bin/env bash
# `make bench`: llm-gateway vs a direct call, nginx and the LiteLLM proxy, on this machine, against the mock provider.
# Installs nginx and wrk (apt), a venv with LiteLLM (pinned) and matplotlib under benchmarks/.work/, builds the
# release binary, then runs benchmarks/bench.py, which writes benchmarks/results/<stamp>.{md,png,json}.
# Knobs (environment): BENCH_ROUNDS, BENCH_DURATION, BENCH_LATENCY_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS,
# BENCH_SCENARIOS, BENCH_CONTENDERS, … (see benchmarks/README.md). BENCH_SKIP_BUILD=1 reuses the built binary; BENCH_SOURCE/BENCH_COMMIT choose what is built.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

LITELLM_VERSION="${LITELLM_VERSION:-1.81.13}"
MATPLOTLIB_VERSION="${MATPLOTLIB_VERSION:-3.11.2}"
work="benchmarks/.work"
mkdir -p "$work"

sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
if ! $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >"$work/apt.log" 2>&1; then
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >"$work/apt.log" 2>&1
fi

venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.installed-litellm-$LITELLM_VERSION-matplotlib-$MATPLOTLIB_VERSION"
if [ ! -f "$stamp" ]; then
  echo "installing litellm[proxy]==$LITELLM_VERSION and matplotlib into $venv" >&2
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION" "matplotlib==$MATPLOTLIB_VERSION"
  touch "$stamp"
fi

# The shared working tree is often mid-edit, so by default the committed HEAD (or BENCH_COMMIT) is built in a
# worktree under benchmarks/.work/src, with its own build directory: the numbers then belong to a commit.
# BENCH_SOURCE=tree builds this working tree instead (scripts/build.sh, into .build/release).
export LLMGW_BUILD_CONFIGURATION="${LLMGW_BUILD_CONFIGURATION:-release}"
if [ "${BENCH_SOURCE:-head}" = tree ]; then
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then bash scripts/build.sh; fi
  LLMGW_BINARY="$(swift build -c "$LLMGW_BUILD_CONFIGURATION" --show-bin-path)/llm-gateway"
  LLMGW_SOURCE="$(git describe --always --dirty) (working tree)"
else
  src="$PWD/$work/src"
  scratch="$PWD/$work/build"
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    commit="$(git rev-parse "${BENCH_COMMIT:-HEAD}")"
    if [ ! -e "$src/.git" ]; then
      rm -rf "$src"
      git worktree prune
      git worktree add --detach "$src" "$commit" >/dev/null
    else
      git -C "$src" checkout --detach -q "$commit"
    fi
    # Resolve dependencies from the versions this checkout already uses, and share its librdkafka and Tansu.
    if [ -f Package.resolved ]; then cp Package.resolved "$src/Package.resolved"; fi
    ln -sfn "$PWD/.deps" "$src/.deps"
    if ! (cd "$src" && . scripts/env.sh && swift build -c "$LLMGW_BUILD_CONFIGURATION" --scratch-path "$scratch" "${SWIFT_LINK_FLAGS[@]}"); then
      echo "the $LLMGW_BUILD_CONFIGURATION build of $(git log -1 --format=%h "$commit") failed; BENCH_SKIP_BUILD=1 reuses the last binary built in $scratch" >&2
      exit 1
    fi
    echo "$commit" >"$scratch/$LLMGW_BUILD_CONFIGURATION.commit"
  fi
  commit="$(cat "$scratch/$LLMGW_BUILD_CONFIGURATION.commit" 2>/dev/null || git -C "$src" rev-parse HEAD)"
  LLMGW_BINARY="$scratch/$LLMGW_BUILD_CONFIGURATION/llm-gateway"
  # Cut by characters, not bytes: half a UTF-8 character in the environment makes Tansu panic at start.
  LLMGW_SOURCE="$(git log -1 --format='%h %s' "$commit" | python3 -c 'import sys; print(sys.stdin.read().strip()[:72])') (committed; built in benchmarks/.work/src)"
fi
export LLMGW_BINARY LLMGW_SOURCE
echo "benchmarking $LLMGW_BINARY ($LLMGW_SOURCE)" >&2
exec "$venv/bin/python" benchmarks/bench.py
