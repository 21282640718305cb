#!/usr/bin/env bash
# Builds llm-gateway (and, with --tests, the test bundle) against librdkafka >= 2.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
configuration="${LLMGW_BUILD_CONFIGURATION:-debug}"
extra=()
if [ "${1:-}" = "--tests" ]; then extra=(--build-tests); fi
swift build -c "$configuration" "${SWIFT_LINK_FLAGS[@]}" "${extra[@]}"
binary="$(swift build -c "$configuration" --show-bin-path)/llm-gateway"
echo "built $binary (librdkafka: $(ldd "$binary" | awk '/librdkafka/ {print $3}'), jemalloc: $(ldd "$binary" | awk '/libjemalloc/ {print $3}'))" >&2
