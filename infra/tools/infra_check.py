#!/usr/bin/env python3
"""Checks of the deployment files under infra/, run by scripts/validate-infra.sh inside .deps/infra-venv.

Each subcommand is one check: it prints what it looked at and exits 0 (pass) or 1 (fail).
Helm charts are rendered with the real Helm engine (Helm v4's Go SDK, PyPI helm-python-sdk), offline.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHART = INFRA / "helm" / "llm-gateway"
PLAIN = INFRA / "k8s" / "llm-gateway.yaml"
RELEASE = "llm-gateway"
NAMESPACE = "llm-gateway"

PROVIDERS = ["openai", "anthropic", "gemini", "groq", "openrouter", "hf", "mistral", "cohere"]
# The mock provider's path for each provider's API (the contract in the issue).
MOCK_PATHS = {
    "openai": "/v1", "anthropic": "", "gemini": "", "groq": "/openai/v1",
    "openrouter": "/api/v1", "hf": "/v1", "mistral": "/v1", "cohere": "",
}
# Kinds kubernetes-validate has no schema for: custom resources of KEDA, Strimzi, Prometheus Operator.
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
KUBE_VERSIONS = ["1.29.0", "1.37.0"]

# Metric names the gateway exports (histograms also as _bucket/_sum/_count).
METRICS = {
    "llmgw_http_requests_total", "llmgw_http_request_duration_seconds", "llmgw_http_requests_in_flight",
    "llmgw_enqueue_duration_seconds", "llmgw_sync_wait_duration_seconds", "llmgw_cache_requests_total",
    "llmgw_rejections_total", "llmgw_jobs_total", "llmgw_job_queue_wait_seconds", "llmgw_job_run_seconds",
    "llmgw_job_end_to_end_seconds", "llmgw_upstream_request_duration_seconds",
    "llmgw_upstream_time_to_first_token_seconds", "llmgw_upstream_errors_total", "llmgw_retries_total",
    "llmgw_fallbacks_total", "llmgw_tokens_total", "llmgw_cost_usd_total", "llmgw_jobs_in_flight",
    "llmgw_consumer_lag", "llmgw_webhook_deliveries_total",
}
HISTOGRAMS = {
    "llmgw_http_request_duration_seconds", "llmgw_enqueue_duration_seconds", "llmgw_sync_wait_duration_seconds",
    "llmgw_job_queue_wait_seconds", "llmgw_job_run_seconds", "llmgw_job_end_to_end_seconds",
    "llmgw_upstream_request_duration_seconds", "llmgw_upstream_time_to_first_token_seconds",
}

# Install order for the all-in-one file, like Helm's.
KIND_ORDER = [
    "Namespace", "ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment",
    "HorizontalPodAutoscaler", "PodDisruptionBudget", "KafkaTopic", "ScaledObject", "ServiceMonitor",
    "PrometheusRule",
]


class CheckFailed(Exception):
    pass


class Report:
    """Collects problems; a check fails when any was found."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.problems.append(message)
        return condition

    def finish(self, summary: str) -> None:
        for problem in self.problems:
            print(f"    problem: {problem}")
        if self.problems:
            raise CheckFailed(f"{len(self.problems)} problem(s)")
        print(f"    {summary}")


# ---------------------------------------------------------------------------------------------------
# Rendering with the real Helm engine


def load_values(files: Iterable[Path]) -> dict[str, Any]:
    """Merges values files like `helm -f a -f b` does (maps merge, everything else replaces)."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    values: dict[str, Any] = {}
    for f in files:
        values = merge(values, yaml.safe_load(f.read_text()) or {})
    return values


def helm_render(values: dict[str, Any]) -> list[tuple[str, str]]:
    """`helm template RELEASE CHART -n NAMESPACE`: (template path, document text) pairs, in order."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[tuple[str, str]] = []
    for path in sorted(rendered):
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for text in re.split(r"(?m)^---[ \t]*$", rendered[path]):
            body = "\n".join(line for line in text.strip("\n").splitlines()).strip()
            if not body or all(l.strip().startswith("#") or not l.strip() for l in body.splitlines()):
                continue
            docs.append((path, body + "\n"))
    return docs


def parse_docs(docs: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path, text in docs:
        obj = yaml.safe_load(text)
        if not isinstance(obj, dict):
            raise CheckFailed(f"{path}: a document is not a mapping")
        out.append((path, obj))
    return out


def sort_key(obj: dict[str, Any]) -> tuple[int, str]:
    kind = obj.get("kind", "")
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (rank, obj.get("metadata", {}).get("name", ""))


def plain_manifest_text() -> str:
    """The all-in-one file infra/k8s/llm-gateway.yaml, as --render writes it."""
    values_file = CHART / "ci" / "plain-manifests-values.yaml"
    docs = helm_render(load_values([values_file]))
    parsed = [(path, text, yaml.safe_load(text)) for path, text in docs]
    parsed.sort(key=lambda item: sort_key(item[2]))
    header = (
        "# llm-gateway: plain Kubernetes manifests RENDERED FROM THE HELM CHART infra/helm/llm-gateway.\n"
        "# Do not edit by hand. Regenerate with:  scripts/validate-infra.sh --render\n"
        f"# (helm template {RELEASE} infra/helm/llm-gateway --namespace {NAMESPACE} \\\n"
        f"#    -f infra/helm/llm-gateway/ci/{values_file.name})\n"
        "# Chart defaults plus Strimzi KafkaTopics, ServiceMonitor and PrometheusRule. Before applying:\n"
        "#   - fill the Secret llm-gateway-secrets (LLMGW_ADMIN_TOKEN, <ID>_API_KEY) or replace it with your own;\n"
        "#   - set LLMGW_KAFKA_BROKERS / LLMGW_REDIS_URL in the ConfigMap and the ScaledObjects' bootstrapServers;\n"
        "#   - set the image of the Deployments (llm-gateway:0.1.0 is a local tag).\n"
        f"# Apply: kubectl create namespace {NAMESPACE}; kubectl apply -n {NAMESPACE} -f infra/k8s/llm-gateway.yaml\n"
        "# Needs KEDA (ScaledObject), the Strimzi operator (KafkaTopic) and the Prometheus Operator\n"
        "# (ServiceMonitor, PrometheusRule) installed; drop those documents if you do not run them.\n"
    )
    body = "".join(f"---\n# Source: {path}\n{text}" for path, text, _ in parsed)
    return header + body


# ---------------------------------------------------------------------------------------------------
# Kubernetes schema validation


def k8s_validate(objects: list[tuple[str, dict[str, Any]]], where: str) -> tuple[int, list[str]]:
    """Validates every object against the Kubernetes schemas (strict: unknown fields are errors).
    CRD kinds are only checked for apiVersion/kind/metadata.name. Returns (validated, crd kinds seen)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    report = Report()
    validated = 0
    crds: list[str] = []
    for path, obj in objects:
        api, kind = obj.get("apiVersion"), obj.get("kind")
        name = (obj.get("metadata") or {}).get("name")
        ident = f"{where}:{path} {kind}/{name}"
        if not (api and kind and name):
            report.expect(False, f"{ident}: needs apiVersion, kind and metadata.name")
            continue
        if (api, kind) in CRD_KINDS:
            report.expect(isinstance(obj.get("spec"), dict), f"{ident}: custom resource without a spec")
            crds.append(kind)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except SchemaNotFoundError:
                report.expect(False, f"{ident}: no Kubernetes {version} schema for {api} {kind}")
            except Exception as error:  # ValidationError and friends
                message = str(error).splitlines()[0]
                report.expect(False, f"{ident}: invalid for Kubernetes {version}: {message}")
        validated += 1
    if report.problems:
        report.finish("")
    return validated, crds


def crd_note(crds: list[str]) -> str:
    if not crds:
        return ""
    counts: dict[str, int] = {}
    for kind in crds:
        counts[kind] = counts.get(kind, 0) + 1
    listed = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    return f"; {listed} not schema-validated (CRDs; kubernetes-validate ships no schema), checked for apiVersion/kind/metadata.name/spec only"


# ---------------------------------------------------------------------------------------------------
# Semantic checks of a rendered release


def index(objects: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for _, obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        if key in out:
            raise CheckFailed(f"duplicate {key[0]}/{key[1]}")
        out[key] = obj
    return out


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_release(objects: list[tuple[str, dict[str, Any]]], values: dict[str, Any]) -> Report:
    """What the issue asks of the chart, checked on rendered objects."""
    r = Report()
    objs = index(objects)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for (kind, _), obj in objs.items():
        by_kind.setdefault(kind, []).append(obj)

    configmaps = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}
    secrets = {o["metadata"]["name"] for o in by_kind.get("Secret", [])}
    deployments = {o["metadata"]["name"]: o for o in by_kind.get("Deployment", [])}
    env_cm = configmaps.get(f"{RELEASE}-config", {}).get("data", {})
    r.expect(bool(env_cm), "ConfigMap llm-gateway-config with the non-secret environment is missing")
    drain = float(env_cm.get("LLMGW_DRAIN_SECONDS", "25"))
    brokers = env_cm.get("LLMGW_KAFKA_BROKERS")

    existing_secret = values.get("existingSecret") or ""
    if existing_secret:
        r.expect(f"{RELEASE}-secrets" not in secrets, "existingSecret is set but the chart still made a Secret")
    else:
        r.expect(f"{RELEASE}-secrets" in secrets, "Secret llm-gateway-secrets for provider keys is missing")

    workers = values.get("workers") or {}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    keda = (values.get("worker", {}).get("keda", {}) or {}).get("enabled", defaults["worker"]["keda"]["enabled"])
    enabled = [p for p in PROVIDERS if (workers.get(p, {}) or {}).get("enabled", defaults["workers"][p]["enabled"])]

    # Every Deployment: non-root, read-only root FS, probes, resources, grace period, env sources.
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        r.expect(psc.get("runAsNonRoot") is True, f"Deployment {name}: pod securityContext.runAsNonRoot is not true")
        r.expect(matches(dep["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]),
                 f"Deployment {name}: selector does not match its pod labels")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            r.expect(sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: readOnlyRootFilesystem is not true")
            r.expect(sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: allowPrivilegeEscalation is not false")
            res = c.get("resources", {})
            r.expect(bool(res.get("requests")) and bool(res.get("limits")), f"{name}/{c['name']}: resource requests/limits missing")
            live = (c.get("livenessProbe") or {}).get("httpGet", {}).get("path")
            ready = (c.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            if c["name"] in ("ingress", "worker"):
                r.expect(live == "/healthz", f"{name}: liveness probe is {live!r}, expected /healthz")
                r.expect(ready == "/readyz", f"{name}: readiness probe is {ready!r}, expected /readyz")
                grace = pod.get("terminationGracePeriodSeconds", 30)
                r.expect(grace > drain, f"{name}: terminationGracePeriodSeconds {grace} is not above the drain time {drain}")
                for src in c.get("envFrom", []):
                    if "configMapRef" in src:
                        r.expect(src["configMapRef"]["name"] in configmaps, f"{name}: envFrom ConfigMap {src['configMapRef']['name']} is not rendered")
                    if "secretRef" in src:
                        ref = src["secretRef"]["name"]
                        r.expect(ref in secrets or ref == existing_secret, f"{name}: envFrom Secret {ref} is neither rendered nor existingSecret")
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                port = (c.get(probe) or {}).get("httpGet", {}).get("port")
                if isinstance(port, str):
                    r.expect(port in ports, f"{name}: {probe} uses port {port!r} the container does not declare")

    # One worker per enabled provider, with its ScaledObject on the right group and topic.
    worker_deps = {n: d for n, d in deployments.items() if n.startswith(f"{RELEASE}-worker-")}
    r.expect(sorted(worker_deps) == sorted(f"{RELEASE}-worker-{p}" for p in enabled),
             f"worker Deployments {sorted(worker_deps)} do not match the enabled providers {enabled}")
    scaled = {o["metadata"]["name"]: o for o in by_kind.get("ScaledObject", [])}
    for p in enabled:
        wv = {**defaults["workers"][p], **(workers.get(p) or {})}
        name = f"{RELEASE}-worker-{p}"
        dep = deployments.get(name)
        if not dep:
            continue
        c = dep["spec"]["template"]["spec"]["containers"][0]
        r.expect(c.get("args") == ["worker", "--provider", p], f"{name}: args {c.get('args')} are not worker --provider {p}")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        r.expect(env.get("LLMGW_WORKER_CONCURRENCY") == str(wv["concurrency"]),
                 f"{name}: LLMGW_WORKER_CONCURRENCY {env.get('LLMGW_WORKER_CONCURRENCY')} != {wv['concurrency']}")
        if keda:
            r.expect("replicas" not in dep["spec"], f"{name}: sets replicas although KEDA owns the scale")
            so = scaled.get(name)
            if not r.expect(so is not None, f"ScaledObject {name} is missing"):
                continue
            spec = so["spec"]
            r.expect(spec["scaleTargetRef"].get("name") == name, f"ScaledObject {name}: scaleTargetRef is {spec['scaleTargetRef']}")
            r.expect(spec.get("minReplicaCount") == wv["minReplicas"] and spec.get("maxReplicaCount") == wv["maxReplicas"],
                     f"ScaledObject {name}: replica bounds {spec.get('minReplicaCount')}..{spec.get('maxReplicaCount')} != values")
            triggers = spec.get("triggers", [])
            # One kafka trigger per lane: the interactive topic, then the batch lane (the worker consumes both).
            batch_lag = (values.get("worker", {}).get("keda", {}) or {}).get("batchLagThreshold", defaults["worker"]["keda"]["batchLagThreshold"])
            lanes = [("", wv["lagThreshold"]), (".batch", batch_lag)]
            r.expect(len(triggers) == len(lanes) and all(t.get("type") == "kafka" for t in triggers),
                     f"ScaledObject {name}: expected a kafka trigger for the interactive and the batch lane")
            for trigger, (suffix, lag) in zip(triggers, lanes):
                md = trigger.get("metadata", {})
                r.expect(md.get("consumerGroup") == f"llm-gateway.worker.{p}{suffix}", f"ScaledObject {name}: consumerGroup {md.get('consumerGroup')}")
                r.expect(md.get("topic") == f"llm.jobs.{p}{suffix}", f"ScaledObject {name}: topic {md.get('topic')}")
                r.expect(md.get("lagThreshold") == str(lag), f"ScaledObject {name}: lagThreshold {md.get('lagThreshold')!r} != '{lag}'")
                r.expect(md.get("bootstrapServers") == brokers, f"ScaledObject {name}: bootstrapServers {md.get('bootstrapServers')} != {brokers}")
                r.expect(md.get("offsetResetPolicy") in ("earliest", "latest"), f"ScaledObject {name}: offsetResetPolicy {md.get('offsetResetPolicy')}")
                r.expect(all(isinstance(v, str) for v in md.values()), f"ScaledObject {name}: trigger metadata values must be strings")
        else:
            r.expect(dep["spec"].get("replicas") == wv["replicas"], f"{name}: replicas {dep['spec'].get('replicas')} != {wv['replicas']}")
    if not keda:
        r.expect(not scaled, "KEDA is disabled but ScaledObjects were rendered")

    # Services select pods that exist; HPA and PDB point at Deployments.
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
    for svc in by_kind.get("Service", []):
        sel = svc["spec"].get("selector", {})
        r.expect(any(matches(sel, labels) for labels in pod_labels), f"Service {svc['metadata']['name']}: selects no pod")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        r.expect(any(matches(sel, labels) for labels in pod_labels), f"PDB {pdb['metadata']['name']}: selects no pod")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        r.expect(target in deployments, f"HPA {hpa['metadata']['name']}: target {target} is not rendered")
        metrics = hpa["spec"].get("metrics", [])
        r.expect(any(m.get("resource", {}).get("name") == "cpu" for m in metrics), f"HPA {hpa['metadata']['name']}: no CPU metric")
    ingress_auto = (values.get("ingress", {}).get("autoscaling", {}) or {}).get("enabled", True)
    r.expect(bool(by_kind.get("HorizontalPodAutoscaler")) == ingress_auto, "ingress HPA presence does not follow ingress.autoscaling.enabled")

    # Strimzi topics.
    if (values.get("strimzi") or {}).get("enabled"):
        topics = {o["spec"].get("topicName"): o for o in by_kind.get("KafkaTopic", [])}
        want = {f"llm.jobs.{p}" for p in enabled} | {f"llm.jobs.{p}.batch" for p in enabled} | {"llm.jobs.dead-letter"}
        r.expect(set(topics) == want, f"KafkaTopics {sorted(topics)} != {sorted(want)}")
        for t, o in topics.items():
            r.expect("strimzi.io/cluster" in o["metadata"].get("labels", {}), f"KafkaTopic {t}: no strimzi.io/cluster label")
            if t != "llm.jobs.dead-letter":
                r.expect(o["spec"].get("partitions") == 6, f"KafkaTopic {t}: partitions {o['spec'].get('partitions')} != 6")
            r.expect(isinstance(o["spec"].get("replicas"), int), f"KafkaTopic {t}: replicas is not an integer")
    else:
        r.expect(not by_kind.get("KafkaTopic"), "strimzi is disabled but KafkaTopics were rendered")

    # Monitoring.
    if (values.get("serviceMonitor") or {}).get("enabled"):
        sms = by_kind.get("ServiceMonitor", [])
        if r.expect(len(sms) == 1, "ServiceMonitor missing"):
            sm = sms[0]["spec"]
            ports = {e.get("port") for e in sm.get("endpoints", [])}
            paths = {e.get("path") for e in sm.get("endpoints", [])}
            r.expect(paths == {"/metrics"}, f"ServiceMonitor scrapes {paths}")
            covered = [s for s in by_kind.get("Service", []) if matches(sm["selector"].get("matchLabels", {}), s["metadata"].get("labels", {}))
                       and s["metadata"]["labels"].get("app.kubernetes.io/component") in ("ingress", "worker")
                       and any(p.get("name") in ports for p in s["spec"]["ports"])]
            comps = {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in covered}
            r.expect(comps == {"ingress", "worker"}, f"ServiceMonitor covers {sorted(comps)}, expected ingress and worker Services")
    if (values.get("prometheusRule") or {}).get("enabled"):
        rules = by_kind.get("PrometheusRule", [])
        if r.expect(len(rules) == 1, "PrometheusRule missing"):
            shipped = yaml.safe_load((CHART / "files" / "alerts.yml").read_text())
            r.expect(rules[0]["spec"] == shipped, "PrometheusRule spec differs from files/alerts.yml")

    # Mock provider wiring.
    if (values.get("mockProvider") or {}).get("enabled"):
        mock = f"http://{RELEASE}-mock-provider:3030"
        for p in PROVIDERS:
            key = f"{p.upper()}_BASE_URL"
            override = (values.get("providerBaseURLs") or {}).get(p)
            want = override or mock + MOCK_PATHS[p]
            r.expect(env_cm.get(key) == want, f"ConfigMap {key}={env_cm.get(key)!r}, expected {want!r}")
    return r


# ---------------------------------------------------------------------------------------------------
# Subcommands


def cmd_lint(_: argparse.Namespace) -> None:
    import helm_python as helm

    scenarios = [("defaults", [])] + [(f.name, [f]) for f in sorted((CHART / "ci").glob("*-values.yaml"))]
    r = Report()
    for label, files in scenarios:
        report = helm.lint(str(CHART), load_values(files), strict=True, namespace=NAMESPACE, kube_version="v1.29.0")
        for m in report.get("messages", []):
            if m.get("severity", 0) >= 2:
                r.expect(False, f"helm lint ({label}): {m.get('path')}: {m.get('error')}")
        for e in report.get("errors") or []:
            r.expect(False, f"helm lint ({label}): {e}")
    import helm_python

    r.finish(f"helm lint --strict clean for {len(scenarios)} value sets (Helm SDK {helm_python.helm_sdk_version()} via helm-python-sdk)")


def cmd_render(args: argparse.Namespace) -> None:
    files = [CHART / "ci" / f for f in args.values]
    values = load_values(files)
    docs = helm_render(values)
    objects = parse_docs(docs)
    validated, crds = k8s_validate(objects, "rendered")
    report = check_release(objects, values)
    kinds: dict[str, int] = {}
    for _, o in objects:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    report.finish(
        f"{len(objects)} objects ({summary}); {validated} valid against Kubernetes "
        f"{' and '.join(KUBE_VERSIONS)} schemas (strict){crd_note(crds)}; chart contract checks passed"
    )


def cmd_render_must_fail(_: argparse.Namespace) -> None:
    """The chart refuses a grace period that would cut the worker's drain short."""
    import helm_python as helm

    try:
        helm_render({"drainSeconds": 25, "terminationGracePeriodSeconds": 20})
    except helm.HelmError as error:
        if "terminationGracePeriodSeconds" in str(error):
            print("    terminationGracePeriodSeconds <= drainSeconds is rejected at render time")
            return
        raise CheckFailed(f"render failed for another reason: {error}")
    raise CheckFailed("a grace period shorter than the drain rendered without error")


def cmd_plain(_: argparse.Namespace) -> None:
    files = sorted((INFRA / "k8s").glob("*.yaml"))
    if not files:
        raise CheckFailed("no infra/k8s/*.yaml")
    objects: list[tuple[str, dict[str, Any]]] = []
    for f in files:
        text = f.read_text()
        if "RENDERED FROM THE HELM CHART" not in text.splitlines()[0]:
            raise CheckFailed(f"{f.relative_to(ROOT)}: the header saying it is rendered from the chart is missing")
        for obj in yaml.safe_load_all(text):
            if obj is not None:
                objects.append((f.name, obj))
    validated, crds = k8s_validate(objects, "infra/k8s")
    values = load_values([CHART / "ci" / "plain-manifests-values.yaml"])
    report = check_release(objects, values)
    report.finish(
        f"{len(objects)} objects in {len(files)} file(s); {validated} valid against Kubernetes "
        f"{' and '.join(KUBE_VERSIONS)} schemas (strict){crd_note(crds)}"
    )


def cmd_plain_fresh(_: argparse.Namespace) -> None:
    want = plain_manifest_text()
    have = PLAIN.read_text() if PLAIN.exists() else ""
    if want != have:
        import difflib

        diff = list(difflib.unified_diff(have.splitlines(), want.splitlines(), "infra/k8s (committed)", "chart (rendered)", lineterm="", n=1))
        for line in diff[:40]:
            print(f"    {line}")
        raise CheckFailed("infra/k8s/llm-gateway.yaml is stale: run scripts/validate-infra.sh --render")
    dash = (INFRA / "grafana" / "dashboards" / "llm-gateway.json").read_bytes()
    copy = (CHART / "files" / "llm-gateway.json").read_bytes()
    if dash != copy:
        raise CheckFailed("infra/helm/llm-gateway/files/llm-gateway.json differs from infra/grafana/dashboards/llm-gateway.json: run --render")
    print("    infra/k8s/llm-gateway.yaml and the chart's dashboard copy match what the chart renders")


def cmd_write_plain(_: argparse.Namespace) -> None:
    import shutil

    shutil.copyfile(INFRA / "grafana" / "dashboards" / "llm-gateway.json", CHART / "files" / "llm-gateway.json")
    PLAIN.parent.mkdir(parents=True, exist_ok=True)
    PLAIN.write_text(plain_manifest_text())
    print(f"    wrote {PLAIN.relative_to(ROOT)} and refreshed the chart's dashboard copy")


def duration_seconds(value: str) -> float:
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value))
    if not m or not any(m.groups()):
        raise CheckFailed(f"cannot read duration {value!r}")
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def cmd_compose(_: argparse.Namespace) -> None:
    path = INFRA / "docker-compose.yml"
    doc = yaml.safe_load(path.read_text())  # merge keys (<<) resolved like compose does
    r = Report()
    services = doc.get("services", {})
    workers = [f"worker-{p}" for p in PROVIDERS]
    for name in ["kafka", "kafka-init", "redis", "mock-provider", "ingress", "prometheus", "grafana", *workers]:
        r.expect(name in services, f"service {name} is missing")
    for name, svc in services.items():
        if name != "kafka-init":
            test = (svc.get("healthcheck") or {}).get("test")
            r.expect(bool(test), f"service {name} has no healthcheck")
        if "build" in svc:
            ctx = (path.parent / svc["build"]["context"]).resolve()
            r.expect((ctx / "Package.swift").exists(), f"{name}: build context {ctx} holds no Package.swift")
            r.expect((ctx / svc["build"]["dockerfile"]).exists(), f"{name}: Dockerfile {svc['build']['dockerfile']} not in the context")
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                r.expect((path.parent / src).exists(), f"{name}: bind mount source {src} does not exist")

    def needs(svc: str, dep: str, condition: str) -> None:
        got = ((services.get(svc, {}).get("depends_on") or {}).get(dep) or {}).get("condition")
        r.expect(got == condition, f"{svc} depends_on {dep}: condition {got!r}, expected {condition}")

    for svc in ["ingress", *workers]:
        needs(svc, "kafka", "service_healthy")
        needs(svc, "redis", "service_healthy")
        needs(svc, "kafka-init", "service_completed_successfully")
    for svc in workers:
        needs(svc, "mock-provider", "service_healthy")
        cmd = services.get(svc, {}).get("command")
        r.expect(cmd == ["worker", "--provider", svc.removeprefix("worker-")], f"{svc}: command {cmd}")
    for svc in ["ingress", *workers]:
        s = services.get(svc, {})
        env = s.get("environment", {})
        drain = float(env.get("LLMGW_DRAIN_SECONDS", 25))
        r.expect(duration_seconds(s.get("stop_grace_period", "10s")) > drain, f"{svc}: stop_grace_period is not above the {drain}s drain")
        r.expect(env.get("LLMGW_HTTP_HOST") == "0.0.0.0", f"{svc}: LLMGW_HTTP_HOST is not 0.0.0.0")
        r.expect(env.get("LLMGW_KAFKA_BROKERS") == "kafka:9092", f"{svc}: LLMGW_KAFKA_BROKERS {env.get('LLMGW_KAFKA_BROKERS')}")
        r.expect(str(env.get("LLMGW_REDIS_URL", "")).startswith("redis://redis:6379"), f"{svc}: LLMGW_REDIS_URL {env.get('LLMGW_REDIS_URL')}")
        for p in PROVIDERS:
            want = f"http://mock-provider:3030{MOCK_PATHS[p]}"
            r.expect(env.get(f"{p.upper()}_BASE_URL") == want, f"{svc}: {p.upper()}_BASE_URL {env.get(f'{p.upper()}_BASE_URL')!r} != {want}")
            r.expect(bool(env.get(f"{p.upper()}_API_KEY")), f"{svc}: {p.upper()}_API_KEY is empty")

    kafka = services.get("kafka", {})
    kenv = {k: str(v) for k, v in (kafka.get("environment") or {}).items()}
    r.expect(kafka.get("image", "").startswith("apache/kafka:"), "kafka: not the apache/kafka image")
    for key in ["KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
                "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]:
        r.expect(key in kenv, f"kafka: {key} is not set (KRaft)")
    r.expect(set(kenv.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"}, "kafka: not a combined broker,controller node")
    r.expect(kenv.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").startswith(kenv.get("KAFKA_NODE_ID", "?") + "@"), "kafka: the node is not its own quorum voter")
    init = " ".join(services.get("kafka-init", {}).get("command", []))
    r.expect("--if-not-exists" in init and "--partitions 6" in init, "kafka-init does not create the topics with 6 partitions")
    r.expect("llm.jobs.dead-letter" in init, "kafka-init does not create llm.jobs.dead-letter")
    for p in PROVIDERS:
        r.expect(re.search(rf"\b{p}\b", init) is not None, f"kafka-init does not create llm.jobs.{p}")
    redis_cmd = " ".join(services.get("redis", {}).get("command", []))
    r.expect("--appendonly yes" in redis_cmd, "redis: AOF (--appendonly yes) is not on")
    r.finish(f"{len(services)} services; healthchecks, depends_on conditions, KRaft settings, topics, AOF, "
             f"stop grace and all {len(PROVIDERS)} providers' mock wiring check out")


def promql_metrics(expr: str) -> set[str]:
    names = set(re.findall(r"\bllmgw_[a-z0-9_]+", expr))
    out = set()
    for n in names:
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        out.add(base if base in HISTOGRAMS else n)
    return out


def cmd_observability(_: argparse.Namespace) -> None:
    r = Report()
    # Prometheus scrape config covers the ingress and every worker service of compose.
    prom = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom.get("scrape_configs", []) for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
    compose = yaml.safe_load((INFRA / "docker-compose.yml").read_text())["services"]
    r.expect("ingress:3020" in targets, "prometheus.yml does not scrape ingress:3020")
    for p in PROVIDERS:
        r.expect(f"worker-{p}:3021" in targets, f"prometheus.yml does not scrape worker-{p}:3021")
    for t in targets:
        host = t.split(":")[0]
        r.expect(host in compose or host in ("127.0.0.1", "localhost"), f"prometheus.yml target {t} is no compose service")
    r.expect("/etc/prometheus/alerts.yml" in prom.get("rule_files", []), "prometheus.yml does not load the alert rules")

    # Alert rules.
    alerts = yaml.safe_load((CHART / "files" / "alerts.yml").read_text())
    used: set[str] = set()
    for group in alerts.get("groups", []):
        for rule in group.get("rules", []):
            r.expect(bool(rule.get("alert")) and bool(rule.get("expr")), f"alert rule without alert/expr: {rule}")
            used |= promql_metrics(rule.get("expr", ""))

    # Grafana provisioning and dashboard.
    ds = yaml.safe_load((INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    r.expect(any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" for d in ds.get("datasources", [])),
             "Grafana datasource does not point at http://prometheus:9090")
    prov = yaml.safe_load((INFRA / "grafana" / "provisioning" / "dashboards" / "llm-gateway.yml").read_text())
    paths = [p.get("options", {}).get("path") for p in prov.get("providers", [])]
    mounts = [v for v in compose["grafana"].get("volumes", []) if "dashboards" in v and "provisioning" not in v]
    r.expect(any(m.split(":")[1] in paths for m in mounts), f"Grafana dashboard provider path {paths} is not where compose mounts the dashboards {mounts}")
    dash = json.loads((INFRA / "grafana" / "dashboards" / "llm-gateway.json").read_text())
    exprs: list[str] = []
    ids = set()
    for panel in dash.get("panels", []):
        r.expect(panel.get("id") not in ids, f"duplicate panel id {panel.get('id')}")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        targets_ = panel.get("targets", [])
        r.expect(bool(targets_), f"panel {panel.get('title')!r} has no queries")
        for t in targets_:
            exprs.append(t.get("expr", ""))
            r.expect(t.get("expr", "").count("(") == t.get("expr", "").count(")"), f"panel {panel.get('title')!r}: unbalanced parentheses")
    for e in exprs:
        used |= promql_metrics(e)
    unknown = sorted(used - METRICS)
    r.expect(not unknown, f"queries use metrics the gateway does not export: {unknown}")
    joined = "\n".join(exprs)
    wanted = {
        "request rate": r"rate\(llmgw_http_requests_total",
        "latency p50": r"histogram_quantile\(0\.50?, [^\n]*llmgw_http_request_duration_seconds_bucket",
        "latency p99": r"histogram_quantile\(0\.99, [^\n]*llmgw_http_request_duration_seconds_bucket",
        "queue lag per provider": r"llmgw_consumer_lag",
        "jobs by outcome": r"sum by \(outcome\) \(rate\(llmgw_jobs_total",
        "tokens": r"llmgw_tokens_total",
        "cost": r"llmgw_cost_usd_total",
        "cache hit ratio": r'llmgw_cache_requests_total\{result="hit"\}[^\n]*/[^\n]*llmgw_cache_requests_total',
    }
    for label, pattern in wanted.items():
        r.expect(re.search(pattern, joined) is not None, f"dashboard has no {label} panel")
    r.finish(f"prometheus.yml scrapes {len(targets)} targets; {sum(len(g['rules']) for g in alerts['groups'])} alert rules; "
             f"dashboard has {len(exprs)} queries over {len(used)} gateway metrics, all of them exported")


def cmd_dockerfile_context(_: argparse.Namespace) -> None:
    """COPY sources of infra/Dockerfile exist in the context and are not excluded by .dockerignore."""
    r = Report()
    text = (INFRA / "Dockerfile").read_text()
    ignore = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    for line in text.splitlines():
        m = re.match(r"COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$", line.strip())
        if not m:
            continue
        for src in m.group(1).split():
            if "[" in src:  # optional file (Package.resolve[d])
                continue
            r.expect((ROOT / src).exists(), f"COPY {src}: not in the build context")
            r.expect(not any(src == i or src.startswith(i.rstrip("/") + "/") for i in ignore), f"COPY {src}: excluded by .dockerignore")
    r.expect(re.search(r"^USER\s+\d+", text, re.M) is not None, "the runtime stage does not switch to a numeric non-root USER")
    r.expect("HEALTHCHECK" in text, "no HEALTHCHECK")
    r.expect("--static-swift-stdlib" in text, "the Swift runtime is neither linked statically nor copied")
    r.finish("COPY sources exist and are not dockerignored; numeric non-root USER, HEALTHCHECK present")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "lint": cmd_lint,
    "render": cmd_render,
    "render-must-fail": cmd_render_must_fail,
    "plain": cmd_plain,
    "plain-fresh": cmd_plain_fresh,
    "write-plain": cmd_write_plain,
    "compose": cmd_compose,
    "observability": cmd_observability,
    "dockerfile-context": cmd_dockerfile_context,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("values", nargs="*", help="values files under the chart's ci/ (render)")
    args = parser.parse_args()
    try:
        COMMANDS[args.command](args)
    except CheckFailed as error:
        print(f"    FAILED: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
