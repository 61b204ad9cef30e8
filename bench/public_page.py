"""Measure the public notice page against the targets in DESIGN.md ("Targets").

Run from the checkout: ``.venv/bin/python bench/public_page.py``. In one run, on this machine
only (127.0.0.1), it

1. installs wrk, nginx and redis-server when they are missing and it runs as root;
2. prepares a temporary SQLite database, instance directory and private Redis, migrates and
   seeds the demo data (which publishes the CRM outage notice);
3. starts gunicorn (2 sync workers) for the portal (``wsgi:app``) and for the trivial Flask
   view in ``bench/hello_app.py``;
4. runs ``wrk -t2 -c32 -d10s --latency`` against (a) the hello view, (b) the notice page,
   (c) the notice page revalidated with If-None-Match, (d) the notice page through nginx
   configured from ``deploy/nginx-aftercare.conf``, answered from the portal's static snapshot
   (``flask public snapshot``), and (e) nginx serving the same HTML as a plain static file;
5. prints the numbers and the targets, PASS or FAIL, and removes everything it started.

It is a measurement, not a test: it exits 0 whatever the numbers (non-zero only when it could
not measure). About two minutes once the tools are installed (2 rounds of 10 s runs).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
NGINX_DEPLOY_CONF = ROOT / "deploy" / "nginx-aftercare.conf"

THREADS, CONNECTIONS, DURATION, WARMUP = 2, 32, 10, 2
GUNICORN_ARGS = ["-w", "2", "-k", "sync"]
ACCEPT_LANGUAGE = "zh-CN"

RATIO_APP_TARGET = 0.9      # notice page / hello view, both under gunicorn
RATIO_NGINX_TARGET = 0.95   # notice page from the snapshot through nginx / nginx static file
P99_TARGET_MS = 50.0

# Debian packages per tool: the first one that installs wins.
TOOLS = {"wrk": ["wrk"], "nginx": ["nginx-light", "nginx"], "redis-server": ["redis-server"]}

COUNT_STATUS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) s304 = 0; other = 0 end
function response(status, headers, body)
  if status == 304 then s304 = s304 + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("s304"); b = b + t:get("other") end
  io.write(string.format("statuses: 304=%d other=%d\\n", a, b))
end
"""


class BenchError(RuntimeError):
    """The benchmark cannot be run; the message says why."""


# --------------------------------------------------------------------------- tools


def find_tool(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


def ensure_tools() -> dict[str, str]:
    missing = [tool for tool in TOOLS if find_tool(tool) is None]
    if missing:
        if os.geteuid() != 0:
            packages = " ".join(TOOLS[t][0] for t in missing)
            raise BenchError(f"missing {', '.join(missing)}: run this as root once, or "
                             f"`sudo apt-get install {packages}`.")
        print(f"Installing {', '.join(missing)} with apt-get…", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=300)
        for tool in missing:
            for package in TOOLS[tool]:
                done = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env,
                                      check=False, timeout=300)
                if done.returncode == 0 and find_tool(tool):
                    break
            else:
                raise BenchError(f"could not install {tool} (tried {', '.join(TOOLS[tool])}).")
    return {tool: find_tool(tool) or tool for tool in TOOLS}


# --------------------------------------------------------------------------- processes


class Processes:
    """Background processes, each in its own session so its whole group can be ended."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, **kwargs)
        log.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, headers: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_http(port: int, path: str, procs: Processes, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        procs.check_alive()
        try:
            status, _, _ = get(port, path)
            if status < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"nothing answered on 127.0.0.1:{port}{path} within {seconds} s")
        time.sleep(0.1)


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    rps: float
    p99_ms: float
    requests: int
    bad_status: int
    socket_errors: int
    cpu_seconds: float  # CPU time of the server's process group during the run
    statuses: tuple[int, int] | None = None  # (304s, others) when counted


@dataclass
class Target:
    """One thing wrk measures, once per round."""

    name: str
    url: str
    headers: dict[str, str]
    server_group: int  # process group of the server, for its CPU time
    script: Path | None = None
    rounds: list[WrkResult] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return sum(r.rps for r in self.rounds) / len(self.rounds)

    @property
    def p99_ms(self) -> float:  # the worst round
        return max(r.p99_ms for r in self.rounds)

    @property
    def bad_status(self) -> int:
        return sum(r.bad_status for r in self.rounds)

    @property
    def socket_errors(self) -> int:
        return sum(r.socket_errors for r in self.rounds)

    @property
    def cpu_us_per_request(self) -> float:
        requests = sum(r.requests for r in self.rounds)
        return sum(r.cpu_seconds for r in self.rounds) / requests * 1e6 if requests else 0.0

    @property
    def statuses(self) -> tuple[int, int] | None:
        counted = [r.statuses for r in self.rounds if r.statuses is not None]
        if not counted:
            return None
        return sum(c[0] for c in counted), sum(c[1] for c in counted)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(name: str, out: str, cpu_seconds: float) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p99 and total):
        raise BenchError(f"could not read wrk's output for {name}:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    statuses = re.search(r"statuses: 304=(\d+) other=(\d+)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * _UNITS_MS[p99.group(2)],
        requests=int(total.group(1)),
        bad_status=int(bad.group(1)) if bad else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        cpu_seconds=cpu_seconds,
        statuses=(int(statuses.group(1)), int(statuses.group(2))) if statuses else None,
    )


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the live processes in process group ``pgid`` (Linux)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(tool: str, target: Target, duration: int) -> None:
    argv = [tool, f"-t{THREADS}", f"-c{CONNECTIONS}"]
    for key, value in target.headers.items():
        argv += ["-H", f"{key}: {value}"]
    if target.script is not None:
        argv += ["-s", str(target.script)]
    if not target.rounds:
        subprocess.run([*argv, f"-d{WARMUP}s", target.url], capture_output=True,
                       timeout=WARMUP + 30, check=False)
    cpu_before = group_cpu_seconds(target.server_group)
    done = subprocess.run([*argv, f"-d{duration}s", "--latency", target.url],
                          capture_output=True, text=True, timeout=duration + 30, check=False)
    cpu = group_cpu_seconds(target.server_group) - cpu_before
    if done.returncode != 0:
        raise BenchError(f"wrk failed for {target.name}:\n{done.stdout}\n{done.stderr}")
    result = parse_wrk(target.name, done.stdout, cpu)
    target.rounds.append(result)
    print(f"  round {len(target.rounds)}: {target.name:<36} {result.rps:>9.1f} req/s  "
          f"p99 {result.p99_ms:6.2f} ms", flush=True)


# --------------------------------------------------------------------------- nginx


def nginx_config(tmp: Path, app_port: int, cache_port: int, static_port: int,
                 snapshot_dir: Path) -> str:
    """The temporary nginx.conf: deploy/nginx-aftercare.conf with its TLS, paths and ports
    swapped for this run's, plus a server for the same HTML as a static file.
    (tests/test_public_snapshot.py runs the real nginx with this config too.)"""
    text = re.sub(r"#[^\n]*", "", NGINX_DEPLOY_CONF.read_text())  # comments may hold braces
    nginx_dir = tmp / "nginx"
    substitutions = [
        # (pattern, replacement, what it is)
        (r"server\s*\{[^{}]*return\s+301[^{}]*\}", "", "the port-80 redirect server"),
        (r"listen\s+443\s+ssl\s*;", f"listen 127.0.0.1:{cache_port};", "listen 443 ssl;"),
        (r"listen\s+\[::\]:443[^;]*;", "", "listen [::]:443 ssl;"),
        (r"\bssl_\w+[^;]*;", "", "the ssl_* lines"),
        (r"127\.0\.0\.1:8000\b", f"127.0.0.1:{app_port}", "the upstream 127.0.0.1:8000"),
        (r"\n\s*server\s+127\.0\.0\.1:8001\b[^;]*;", "",
         "the second upstream server 127.0.0.1:8001"),
        (r"/var/cache/nginx/aftercare\b", str(nginx_dir / "cache"), "the cache path"),
        (r"/srv/aftercare/static/", f"{ROOT / 'static'}/", "the static alias"),
        (r"/var/lib/aftercare/public-snapshot/current", f"{snapshot_dir}/current",
         "the snapshot path"),
        (r"/var/log/nginx/aftercare\.access\.log", str(nginx_dir / "cache-access.log"),
         "the access log"),
        (r"/var/log/nginx/aftercare\.error\.log", str(nginx_dir / "error.log"), "the error log"),
    ]
    for pattern, replacement, what in substitutions:
        text, count = re.subn(pattern, replacement, text)
        if not count:
            raise BenchError(f"{NGINX_DEPLOY_CONF.relative_to(ROOT)} no longer has {what}: "
                             "update the substitutions in bench/public_page.py.")
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.exists() else (
        "types { text/html html; text/css css; application/javascript js; "
        "image/svg+xml svg; }")
    temp_paths = "\n".join(f"    {kind}_temp_path {nginx_dir / kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""\
worker_processes auto;
pid {nginx_dir / "nginx.pid"};
error_log {nginx_dir / "error.log"};
events {{ worker_connections 1024; }}
http {{
    {types}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
{temp_paths}

    # ---- from {NGINX_DEPLOY_CONF.relative_to(ROOT)} ----
{text}
    # ---- the same HTML as a static file ----
    server {{
        listen 127.0.0.1:{static_port};
        access_log {nginx_dir / "static-access.log"};
        location / {{ root {nginx_dir / "html"}; }}
    }}
}}
"""


# --------------------------------------------------------------------------- the run


def prepare_portal(tmp: Path, redis: str, procs: Processes) -> tuple[dict[str, str], str]:
    instance = tmp / "instance"
    instance.mkdir()
    sock = tmp / "redis.sock"
    procs.start("redis", [redis, "--port", "0", "--unixsocket", str(sock),
                          "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                          "--dir", str(tmp)])
    deadline = time.monotonic() + 10
    while not sock.exists():
        procs.check_alive()
        if time.monotonic() > deadline:
            raise BenchError("redis-server did not create its socket within 10 s")
        time.sleep(0.05)
    db_path = tmp / "aftercare.db"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}",
           "SECRET_KEY": secrets.token_hex(32), "REDIS_URL": f"unix://{sock}",
           "AUDIT_HMAC_KEY": secrets.token_hex(32), "AUDIT_SIGNING_KEY": secrets.token_hex(32),
           "PAYOUT_DETAILS_KEY": secrets.token_hex(32), "ERASURE_KEY": secrets.token_hex(32),
           "VERIFICATION_KEY": secrets.token_hex(32),
           "PORTAL_ENV": "production"}
    # The CLI gets the temporary instance folder (the demo seed writes its credentials there).
    flask_app = f"portal:create_app({{'INSTANCE_PATH': {str(instance)!r}}})"
    for args in (["db", "upgrade"], ["demo", "seed"], ["public", "snapshot"]):
        done = subprocess.run([PYTHON, "-m", "flask", "--app", flask_app, *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode != 0:
            raise BenchError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            "SELECT slug FROM notice WHERE audience = 'public' AND hidden = 0 "
            "AND published_version_id IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    if row is None:
        raise BenchError("the demo seed published no public notice")
    return env, row[0]


def start_gunicorn(procs: Processes, name: str, port: int, app: str, env: dict[str, str],
                   extra: list[str]) -> int:
    """Start gunicorn; return its process group (the master and its workers)."""
    proc = procs.start(name, [PYTHON, "-m", "gunicorn", *GUNICORN_ARGS,
                              "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), *extra,
                              "--log-level", "warning", app], env=env)
    return proc.pid


@dataclass
class Checks:
    revalidated: int = 0       # status of one If-None-Match request to gunicorn
    snapshot_state: str = ""   # X-Aftercare-Snapshot of a request through nginx
    same_body: bool = False    # nginx's snapshot page is byte for byte the portal's
    same_etag: bool = False    # ... and carries the portal's ETag and Last-Modified
    load_before: float = 0.0   # 1-minute load average when the measurements start


def run(tmp: Path, procs: Processes, rounds: int, duration: int) -> list[str]:
    tools = ensure_tools()
    print("Preparing a temporary database, instance folder and Redis…", flush=True)
    env, slug = prepare_portal(tmp, tools["redis-server"], procs)
    path = f"/notices/{slug}"
    headers = {"Accept-Language": ACCEPT_LANGUAGE}
    checks = Checks(load_before=os.getloadavg()[0])

    app_port, hello_port = free_port(), free_port()
    app_group = start_gunicorn(procs, "gunicorn-portal", app_port, "wsgi:app", env, [])
    hello_group = start_gunicorn(procs, "gunicorn-hello", hello_port, "hello_app:app", env,
                                 ["--pythonpath", str(ROOT / "bench")])
    wait_http(app_port, path, procs)
    wait_http(hello_port, "/", procs)

    status, page_headers, body = get(app_port, path, headers)
    if status != 200:
        raise BenchError(f"GET {path} answered {status}:\n{body[:500]!r}")
    etag = page_headers.get("ETag")
    if not etag:
        raise BenchError(f"GET {path} sent no ETag: {page_headers}")
    checks.revalidated, _, _ = get(app_port, path, {**headers, "If-None-Match": etag})
    print(f"Notice page {path}: {len(body)} bytes, ETag {etag}, "
          f"Cache-Control {page_headers.get('Cache-Control')!r}, "
          f"Vary {page_headers.get('Vary')!r}; with If-None-Match: {checks.revalidated}",
          flush=True)

    lua = tmp / "count-304.lua"
    lua.write_text(COUNT_STATUS_LUA)
    app_url = f"http://127.0.0.1:{app_port}{path}"
    targets = {
        "a": Target("(a) hello view, gunicorn", f"http://127.0.0.1:{hello_port}/", headers,
                    hello_group),
        "b": Target("(b) notice page, gunicorn", app_url, headers, app_group),
        "c": Target("(c) notice If-None-Match, gunicorn", app_url,
                    {**headers, "If-None-Match": etag}, app_group, lua),
    }
    # Rounds alternate the runs, so a slow patch of this (shared, noisy) machine hits all.
    for _ in range(rounds):
        for key in "abc":
            measure(tools["wrk"], targets[key], duration)

    # nginx: the documented config in front of the same gunicorn, and the same HTML as a file.
    nginx_dir = tmp / "nginx"
    (nginx_dir / "html").mkdir(parents=True)
    (nginx_dir / "html" / "notice.html").write_bytes(body)
    tmp.chmod(0o755)  # nginx's workers run as an unprivileged user when we are root
    for sub in (nginx_dir, nginx_dir / "html"):
        sub.chmod(0o755)
    cache_port, static_port = free_port(), free_port()
    conf = nginx_dir / "nginx.conf"
    conf.write_text(nginx_config(tmp, app_port, cache_port, static_port,
                                 tmp / "instance" / "public-snapshot"))
    nginx_argv = [tools["nginx"], "-p", f"{nginx_dir}/", "-c", str(conf),
                  "-e", str(nginx_dir / "error.log")]
    check = subprocess.run([*nginx_argv, "-t", "-q"], capture_output=True, text=True,
                           timeout=30, check=False)
    if check.returncode != 0:
        raise BenchError(f"nginx -t rejected {conf}:\n{check.stderr}\n{conf.read_text()}")
    nginx_group = procs.start("nginx", [*nginx_argv, "-g", "daemon off;"]).pid
    wait_http(static_port, "/notice.html", procs)
    wait_http(cache_port, path, procs)
    status, served, snapshot_body = get(cache_port, path, headers)
    checks.snapshot_state = served.get("X-Aftercare-Snapshot", "missing")
    checks.same_body = status == 200 and snapshot_body == body
    checks.same_etag = all(served.get(h) == page_headers.get(h)
                           for h in ("ETag", "Last-Modified", "Cache-Control", "Vary"))
    print(f"Through nginx: {status}, X-Aftercare-Snapshot {checks.snapshot_state}; "
          f"same body: {checks.same_body}; same validators: {checks.same_etag}", flush=True)
    targets["d"] = Target("(d) notice via nginx snapshot", f"http://127.0.0.1:{cache_port}{path}",
                          headers, nginx_group)
    targets["e"] = Target("(e) same HTML, nginx static file",
                          f"http://127.0.0.1:{static_port}/notice.html", headers, nginx_group)
    for _ in range(rounds):
        for key in "de":
            measure(tools["wrk"], targets[key], duration)
    procs.check_alive()
    return report(targets, checks, rounds, duration)


def report(t: dict[str, Target], checks: Checks, rounds: int, duration: int) -> list[str]:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = [
        "",
        f"wrk -t{THREADS} -c{CONNECTIONS} -d{duration}s --latency, {rounds} alternating "
        f"round(s) after a {WARMUP} s warm-up; gunicorn {' '.join(GUNICORN_ARGS)}; "
        f"{os.cpu_count()} CPUs; Accept-Language: {ACCEPT_LANGUAGE}",
        "req/s: mean of the rounds; p99: worst round; CPU µs/req: the server's processes' "
        "CPU time per request",
        f"load average before the run: {checks.load_before:.2f} (other work on the machine "
        "skews req/s; the CPU column much less)",
        "",
        f"{'run':<37}{'req/s':>9}  {'per round':<17}{'p99 ms':>7}{'CPU µs/req':>11}"
        f"{'non-2xx/3xx':>12}{'sock err':>9}",
    ]
    for target in t.values():
        per_round = " ".join(f"{r.rps:.0f}" for r in target.rounds)
        lines.append(f"{target.name:<37}{target.rps:>9.1f}  {per_round:<17}"
                     f"{target.p99_ms:>7.2f}{target.cpu_us_per_request:>11.0f}"
                     f"{target.bad_status:>12}{target.socket_errors:>9}")
    s304, other = t["c"].statuses or (0, -1)
    lines.append(f"{'':<37}(c) statuses counted by wrk: {s304} × 304, {other} other")

    app_ratio = t["b"].rps / t["a"].rps
    nginx_ratio = t["d"].rps / t["e"].rps
    app_rounds = " ".join(f"{b.rps / a.rps:.2f}"
                          for a, b in zip(t["a"].rounds, t["b"].rounds, strict=True))
    nginx_rounds = " ".join(f"{d.rps / e.rps:.2f}"
                            for d, e in zip(t["d"].rounds, t["e"].rounds, strict=True))
    revalidation_ok = (checks.revalidated == 304 and other == 0 and s304 > 0
                       and t["c"].bad_status == 0)
    p99 = t["b"].p99_ms

    def row(label: str, measured: str, target: str, ok: bool) -> str:
        return f"{label:<42}{measured:>26}  {target:>8}  {verdict(ok)}"

    lines += [
        "",
        f"{'target':<42}{'measured (per round)':>26}  {'target':>8}  result",
        row("notice / hello req/s (b/a)", f"{app_ratio:.2f} ({app_rounds})", ">= 0.90",
            app_ratio >= RATIO_APP_TARGET),
        row("notice page p99 at 32 connections (b)", f"{p99:.2f} ms", "< 50 ms",
            p99 < P99_TARGET_MS),
        row("304 on revalidation (one request; run c)",
            f"{checks.revalidated}; {s304}/{s304 + max(other, 0)} were 304", "304",
            revalidation_ok),
        row("nginx snapshot / nginx static req/s (d/e)",
            f"{nginx_ratio:.2f} ({nginx_rounds})", f">= {RATIO_NGINX_TARGET:.2f}",
            nginx_ratio >= RATIO_NGINX_TARGET),
        "",
        f"Server CPU per request: the notice page costs "
        f"{t['b'].cpu_us_per_request / max(t['a'].cpu_us_per_request, 1e-9):.2f}× the hello view "
        f"in gunicorn; a snapshot page costs "
        f"{t['d'].cpu_us_per_request / max(t['e'].cpu_us_per_request, 1e-9):.2f}× the static "
        f"file in nginx.",
        f"nginx answered the notice page from the snapshot: {checks.snapshot_state}; body "
        f"identical to the portal's: {checks.same_body}; same ETag, Last-Modified, "
        f"Cache-Control and Vary: {checks.same_etag}.",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds of each wrk run (default 2)")
    parser.add_argument("--duration", type=int, default=DURATION,
                        help=f"seconds per wrk run (default {DURATION})")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 5 and 1 <= args.duration <= 30):
        parser.error("--rounds must be 1-5 and --duration 1-30 (keep the run short)")

    def on_signal(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="aftercare-bench-"))
    logs = tmp / "logs"
    logs.mkdir()
    procs = Processes(logs)
    try:
        lines = run(tmp, procs, args.rounds, args.duration)
    except BenchError as err:
        print(f"\nbench/public_page.py: {err}", file=sys.stderr)
        for name, _ in procs.procs:
            tail = procs.tail(name, 10)
            if tail:
                print(f"--- {name} log (tail) ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(lines))
    print(f"\n(total {time.monotonic() - started:.0f} s; a measurement, not a test: exit 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
