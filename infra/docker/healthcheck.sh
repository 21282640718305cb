#!/bin/bash
# Container health probe without curl: bash's /dev/tcp and one HTTP/1.1 request.
#   healthcheck [PORT] [PATH]
# PORT defaults to $LLMGW_HEALTHCHECK_PORT, then $LLMGW_HTTP_PORT, then 3020; PATH to /healthz.
# Exits 0 only on an HTTP 200 status line.
set -euo pipefail

port="${1:-${LLMGW_HEALTHCHECK_PORT:-${LLMGW_HTTP_PORT:-3020}}}"
path="${2:-/healthz}"

if ! exec 3<>"/dev/tcp/127.0.0.1/${port}"; then
  echo "unhealthy: nothing listens on 127.0.0.1:${port}" >&2
  exit 1
fi
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
status=""
IFS= read -r -t 5 status <&3 || true
exec 3<&-
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
esac
echo "unhealthy: GET ${path} on port ${port} answered '${status%$'\r'}'" >&2
exit 1
