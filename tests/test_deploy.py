"""The production set-up shipped in deploy/: the systemd units pass `systemd-analyze verify`,
the environment file names every variable production requires, the nginx config with several
web instances passes `nginx -t` as shipped (TLS included), and the health probe the units run
tells up from down."""

from __future__ import annotations

import http.server
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import crossplane
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("aftercare-web@8000.service", "aftercare-web@8001.service",
         "aftercare-worker@1.service", "aftercare-mailworker@1.service",
         "aftercare-mailworker@2.service", "aftercare-cron.service",
         "aftercare-healthcheck@8000.service", "aftercare-healthcheck@8000.timer",
         "aftercare.target")


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin",
                                                    "/sbin"]))


def _example_env() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "aftercare.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The units name /srv/aftercare (the checkout) and /etc/aftercare/aftercare.env: here
    # they point at this checkout (whose .venv has gunicorn and flask) and a copy of the
    # example, so that verify can check every command exists.
    for path in [*DEPLOY.glob("aftercare*.service"), *DEPLOY.glob("aftercare*.timer"),
                 DEPLOY / "aftercare.target"]:
        text = path.read_text().replace("/srv/aftercare", str(ROOT)).replace(
            "/etc/aftercare/aftercare.env", str(tmp_path / "aftercare.env"))
        (tmp_path / path.name).write_text(text)
    shutil.copy(DEPLOY / "aftercare.env.example", tmp_path / "aftercare.env")
    done = subprocess.run([analyze, "verify", "--man=no", *[f"./{u}" for u in UNITS]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert not [line for line in output.splitlines() if "aftercare" in line], output


def test_the_environment_example_names_every_required_variable(tmp_path: Path) -> None:
    """Every key production refuses to start without is in the example, and the example with
    its empty values filled in starts the portal in production (no key files anywhere)."""
    config = (ROOT / "portal" / "config.py").read_text()
    required = set(re.findall(r'_(?:secret|hex_key)\("([A-Z_]+)"', config))
    assert {"SECRET_KEY", "AUDIT_HMAC_KEY", "PAYOUT_DETAILS_KEY"} <= required
    example = _example_env()
    assert required <= set(example), required - set(example)
    assert example["PORTAL_ENV"] == "production"
    assert not [name for name in required if example[name]]  # no secret shipped
    filled = {name: value or secrets.token_hex(32) for name, value in example.items()
              if name in required or value}
    env = {"PATH": os.environ.get("PATH", ""), **filled}
    script = ("import sys; from portal import create_app; "
              "app = create_app({'INSTANCE_PATH': sys.argv[1]}); "
              "print(app.config['PORTAL_ENV'], app.config['SESSION_COOKIE_SECURE'])")
    started = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert started.returncode == 0, started.stderr
    assert started.stdout.split()[-2:] == ["production", "True"]
    assert not list(tmp_path.iterdir())  # no key was made up into the instance folder
    env["SECRET_KEY"] = ""
    refused = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr


def test_the_nginx_upstream_has_several_instances_with_failure_limits() -> None:
    parsed = crossplane.parse(str(DEPLOY / "nginx-aftercare.conf"), single=True,
                              check_ctx=False, check_args=False)
    assert parsed["status"] == "ok", parsed["errors"]
    top = parsed["config"][0]["parsed"]
    (upstream,) = [d for d in top if d["directive"] == "upstream"
                   and d["args"] == ["aftercare_app"]]
    servers = [d["args"] for d in upstream["block"] if d["directive"] == "server"]
    assert len(servers) >= 2
    for args in servers:
        assert any(a.startswith("max_fails=") for a in args), args
        assert any(a.startswith("fail_timeout=") for a in args), args
    https = [d for d in top if d["directive"] == "server" and any(
        x["directive"] == "listen" and "ssl" in x["args"] for x in d["block"])]
    next_upstream = [x["args"] for x in https[0]["block"]
                     if x["directive"] == "proxy_next_upstream"]
    assert next_upstream and "non_idempotent" not in next_upstream[0]  # a POST goes once


def test_the_shipped_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    """As shipped (both upstream instances, TLS), only its file paths moved under tmp_path:
    a self-signed certificate, the log, cache, static and snapshot folders."""
    nginx = _which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed (`make install` installs it)")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=aftercare.example.com", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], capture_output=True, check=True,
                   timeout=60)
    text = (DEPLOY / "nginx-aftercare.conf").read_text()
    for shipped, here in (("/etc/ssl/aftercare/fullchain.pem", tmp_path / "cert.pem"),
                          ("/etc/ssl/aftercare/privkey.pem", tmp_path / "key.pem"),
                          ("/var/cache/nginx/aftercare", tmp_path / "cache"),
                          ("/var/log/nginx/", f"{tmp_path}/"),
                          ("/srv/aftercare/static/", f"{ROOT / 'static'}/"),
                          ("/var/lib/aftercare/public-snapshot", tmp_path / "snapshot")):
        assert shipped in text, shipped
        text = text.replace(shipped, str(here))
    (tmp_path / "aftercare.conf").write_text(text)
    mime = Path("/etc/nginx/mime.types")
    temp = "\n".join(f"{kind}_temp_path {tmp_path / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path / "nginx.pid"};
error_log {tmp_path / "error.log"};
events {{ worker_connections 64; }}
http {{
    {f"include {mime};" if mime.exists() else ""}
    {temp}
    include {tmp_path / "aftercare.conf"};
}}
""")
    done = subprocess.run([nginx, "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"),
                           "-e", str(tmp_path / "error.log")], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_the_health_probe_tells_up_from_down(health_server: int) -> None:
    def probe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py"), *args],
                              capture_output=True, text=True, timeout=60, check=False)

    assert probe(f"http://127.0.0.1:{health_server}/healthz").returncode == 0
    failing = probe("--tries", "2", f"http://127.0.0.1:{health_server}/readyz")
    assert failing.returncode == 1 and "HTTP 503 (2 probe(s))" in failing.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    waited = probe("--wait", "1", f"http://127.0.0.1:{closed}/healthz")
    assert waited.returncode == 1 and "refused" in waited.stderr.lower()
