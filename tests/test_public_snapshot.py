"""The static snapshot of the public site (portal/public/snapshot.py) and the shipped nginx
config that serves it: the same bytes and validators as the live pages, written atomically,
and still answering while gunicorn, the database and Redis are gone."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from portal import uow
from portal.accounts import Role
from portal.config import LOCALES
from portal.notices import publishing
from portal.notices import signals as notice_signals
from portal.public import snapshot
from tests.notice_helpers import make_notice, publish

ROOT = Path(__file__).resolve().parent.parent
VALIDATORS = ("ETag", "Last-Modified", "Cache-Control", "Vary", "Content-Type")


def _bench() -> ModuleType:
    """bench/public_page.py: the one derivation of a runnable config from the shipped one."""
    spec = importlib.util.spec_from_file_location("bench_public_page",
                                                  ROOT / "bench" / "public_page.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _published(app, users) -> str:
    notice = make_notice(users)
    publish(notice, users)
    publishing.after_publication([notice.id])
    return notice.slug


# --------------------------------------------------------------------------- in process


def test_snapshot_holds_the_live_pages_and_drops_a_withdrawal(app, client, users,
                                                              run_worker) -> None:
    slug = _published(app, users)
    run_worker()  # the publication queued the snapshot and the PDFs; a PDF queues it again
    manifest = snapshot.current_manifest(app)["pages"]
    root = snapshot.snapshot_dir(app) / snapshot.CURRENT
    for lang in LOCALES:
        for key, url in ((f"index.{lang}", f"/notices?lang={lang}"),
                         (f"n.{slug}.{lang}", f"/notices/{slug}?lang={lang}"),
                         (f"feed.{lang}", f"/notices/feed.atom?lang={lang}"),
                         (f"pdf.{slug}.{lang}", f"/notices/{slug}.pdf?lang={lang}")):
            assert key in manifest, key
            live = client.get(url)
            assert live.status_code == 200
            assert (root / manifest[key]["file"]).read_bytes() == live.get_data(), key
            for name in VALIDATORS:
                assert manifest[key]["headers"].get(name) == live.headers.get(name), (key, name)
    # A withdrawal (hidden) leaves the snapshot with the next rewrite: no page, no PDF.
    from sqlalchemy import select

    from portal.extensions import db
    from portal.notices.models import Notice

    notice = db.session.scalar(select(Notice).where(Notice.slug == slug))
    publishing.withdraw(notice, reason="Sent by mistake", hide=True, actor=users[Role.AGENT])
    uow.after_commit(notice_signals.public_content_changed.send)
    run_worker()
    pages = snapshot.current_manifest(app)["pages"]
    assert not [key for key in pages if slug in key]
    assert not list((snapshot.snapshot_dir(app) / snapshot.CURRENT / "pages").glob(f"*{slug}*"))
    index = (snapshot.snapshot_dir(app) / snapshot.CURRENT / pages["index.en"]["file"])
    assert slug not in index.read_text()


def test_a_reader_never_sees_a_half_written_page(app, users) -> None:
    """Readers open the served paths (as nginx does) while the snapshot is rewritten again and
    again, once with changed content: every open finds the file, and every file is whole."""
    slug = _published(app, users)
    uow.commit()
    snapshot.write(app)
    current = snapshot.snapshot_dir(app) / snapshot.CURRENT
    served = [current / "notices.en.html", current / "notices" / f"{slug}.en.html",
              current / "notices" / f"{slug}.zh_CN.html", current / "notices" / "feed.en.atom"]
    problems: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for path in served:
                try:
                    with open(path, "rb") as f:
                        size = os.fstat(f.fileno()).st_size
                        body = f.read()
                except OSError as exc:
                    problems.append(f"{path.name}: {exc}")
                    continue
                reads += 1
                end = b"</feed>" if path.suffix == ".atom" else b"</html>"
                if len(body) != size or not body.rstrip().endswith(end) or size < 500:
                    problems.append(f"{path.name}: {len(body)} of {size} bytes")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        generations = set()
        for round_ in range(8):
            if round_ == 4:  # a real change halfway: an update of the notice
                from portal.extensions import db
                from portal.notices import services as notices
                from portal.notices.models import Notice
                from tests.notice_helpers import EN, ZH

                notice = db.session.scalar(db.select(Notice).where(Notice.slug == slug))
                notices.save(notice, content={"zh_CN": ZH, "en": {**EN, "title": "Restored"}},
                             audience="public", planned_publish_at=None,
                             based_on=notice.latest_version.id, actor=users[Role.AGENT])
                publish(notice, users)
                publishing.after_publication([notice.id])  # the page cache is emptied
                uow.commit()
            generations.add(snapshot.write(app).name)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert problems == []
    assert reads > 50
    assert len(generations) == 8
    assert b"Restored" in served[1].read_bytes()
    # The current generation and the one before it are kept; older ones are removed.
    kept = [p.name for p in snapshot.snapshot_dir(app).iterdir()
            if p.name.startswith(snapshot.GENERATION_PREFIX)]
    assert len(kept) == 2


def test_many_changes_queue_one_rewrite(app, users, run_worker) -> None:
    from portal.extensions import rq
    from portal.public import tasks

    def queued() -> list[str]:
        return [job_id for job_id in rq.get_queue("default").job_ids
                if job_id.startswith("public-snapshot-")]

    for _ in range(5):
        notice_signals.public_content_changed.send()
    assert len(queued()) == 1
    run_worker()
    assert queued() == [] and snapshot.current_manifest(app)["pages"]
    assert tasks.queue_snapshot() and len(queued()) == 1  # the job cleared its flag


def test_cli_writes_the_snapshot(app, users) -> None:
    slug = _published(app, users)
    uow.commit()
    result = app.test_cli_runner().invoke(args=["public", "snapshot"])
    assert result.exit_code == 0, result.output
    assert "Snapshot gen-" in result.output
    assert f"n.{slug}.zh_CN" in snapshot.current_manifest(app)["pages"]


# --------------------------------------------------------------------------- real nginx


class Stack:
    """Redis, an RQ worker, gunicorn and nginx for one temporary portal, each stoppable."""

    def __init__(self, tmp: Path, bench: ModuleType) -> None:
        self.tmp, self.bench = tmp, bench
        self.procs = bench.Processes(tmp / "logs")
        self.named: dict[str, subprocess.Popen[bytes]] = {}
        self.db = tmp / "aftercare.db"
        self.sock = tmp / "redis.sock"
        self.instance = tmp / "instance"
        self.app_port = bench.free_port()
        self.nginx_port = bench.free_port()
        self.app = f"portal:create_app({{'INSTANCE_PATH': {str(self.instance)!r}}})"
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{self.db}",
                    "REDIS_URL": f"unix://{self.sock}", "PORTAL_ENV": "production",
                    "SECRET_KEY": "s" * 64, "AUDIT_HMAC_KEY": "a" * 64,
                    "AUDIT_SIGNING_KEY": "b" * 64, "PAYOUT_DETAILS_KEY": "c" * 64,
                    "ERASURE_KEY": "d" * 64, "VERIFICATION_KEY": "v" * 64,
                    "PUBLIC_SNAPSHOT_DIR": str(self.instance / "public-snapshot")}

    def start(self, name: str, argv: list[str]) -> None:
        self.named[name] = self.procs.start(name, argv, env=self.env, cwd=ROOT)

    def stop(self, name: str) -> None:
        proc = self.named.pop(name)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # an RQ worker finishing its job first: the outage
            os.killpg(proc.pid, signal.SIGKILL)  # is what is tested, not a clean shutdown
            proc.wait(timeout=20)
        self.procs.procs = [(n, p) for n, p in self.procs.procs if p is not proc]

    def redis(self) -> None:
        self.start("redis", [shutil.which("redis-server") or "redis-server", "--port", "0",
                             "--unixsocket", str(self.sock), "--save", "",
                             "--appendonly", "no", "--dir", str(self.tmp)])
        self._wait(self.sock.exists, "redis socket")

    def worker(self) -> None:
        self.start("worker", [sys.executable, "-m", "flask", "--app", self.app, "rq", "worker",
                              "default"])

    def gunicorn(self) -> None:
        self.start("gunicorn", [sys.executable, "-m", "gunicorn", "-w", "1", "-b",
                                f"127.0.0.1:{self.app_port}", "--log-level", "warning",
                                self.app])  # the temporary instance folder (its documents)
        self.bench.wait_http(self.app_port, "/notices", self.procs)

    def flask(self, *args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "flask", "--app", self.app, *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stdout + done.stderr

    def nginx(self, nginx: str) -> None:
        conf_dir = self.tmp / "nginx"
        conf_dir.mkdir()
        conf = conf_dir / "nginx.conf"
        conf.write_text(self.bench.nginx_config(self.tmp, self.app_port, self.nginx_port,
                                                self.bench.free_port(),
                                                self.instance / "public-snapshot"))
        argv = [nginx, "-p", f"{conf_dir}/", "-c", str(conf), "-e", str(conf_dir / "error.log")]
        check = subprocess.run([*argv, "-t", "-q"], capture_output=True, text=True, timeout=30,
                               check=False)
        assert check.returncode == 0, check.stderr
        self.named["nginx"] = self.procs.start("nginx", [*argv, "-g", "daemon off;"])

    def get(self, port: int, path: str, headers: dict[str, str] | None = None):
        return self.bench.get(port, path, headers)

    def manifest(self) -> dict:
        return snapshot.current_manifest_at(self.instance / "public-snapshot")

    @staticmethod
    def _wait(ready, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            assert time.monotonic() < deadline, f"no {what} within {seconds} s"
            time.sleep(0.05)


@pytest.fixture
def stack() -> Iterator[Stack]:
    nginx = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""),
                                                         "/usr/sbin", "/sbin"]))
    if nginx is None:
        pytest.skip("nginx is not installed (`make install` installs it): the outage test "
                    "runs the real nginx with the shipped config")
    tmp = Path(tempfile.mkdtemp(prefix="aftercare-snapshot-"))
    tmp.chmod(0o755)  # nginx's workers run as an unprivileged user when we are root
    (tmp / "logs").mkdir()
    stack = Stack(tmp, _bench())
    stack.nginx_binary = nginx  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        stack.procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


UPDATE_SCRIPT = """
import sys
from sqlalchemy import select
from portal import create_app, uow
from portal.accounts import User
from portal.extensions import db
from portal.notices import publishing, services as notices
from portal.notices.models import Notice
from portal.signoffs import services as signoffs

app = create_app({"INSTANCE_PATH": sys.argv[1]})
with app.app_context():
    notice = db.session.scalar(select(Notice).where(Notice.slug == sys.argv[2]))
    agent = db.session.scalar(select(User).where(User.role == "agent"))
    legal = db.session.scalar(select(User).where(User.role == "legal"))
    content = notice.latest_version.content()
    content["en"] = {**content["en"], "title": sys.argv[3]}
    content["zh_CN"] = {**content["zh_CN"], "title": sys.argv[4]}
    notices.save(notice, content=content, audience=notice.audience, planned_publish_at=None,
                 based_on=notice.latest_version.id, actor=agent, publish_on_approval=False)
    request = notices.request_signoff(notice, actor=agent)
    signoffs.decide(request.id, "approved", "", actor=legal)
    publishing.publish(notice, actor=agent)
    publishing.after_publication([notice.id])
    uow.commit()
"""


def test_public_pages_outlive_the_portal_through_nginx(stack: Stack) -> None:
    stack.redis()
    stack.flask("db", "upgrade")
    stack.flask("demo", "seed")  # publishes the CRM notice: snapshot and PDF jobs queued
    with sqlite3.connect(stack.db) as conn:
        (slug,) = conn.execute("SELECT slug FROM notice WHERE audience = 'public' AND hidden = 0 "
                               "AND published_version_id IS NOT NULL ORDER BY id").fetchone()
    stack.worker()
    stack.gunicorn()
    stack._wait(lambda: {f"pdf.{slug}.en", f"pdf.{slug}.zh_CN"} <= set(
        stack.manifest().get("pages", {})), "snapshot with both PDFs", seconds=180)
    stack.nginx(stack.nginx_binary)  # type: ignore[attr-defined]
    stack.bench.wait_http(stack.nginx_port, "/notices", stack.procs)

    # What readers ask for: by ?lang= and by Accept-Language, each page kind.
    asks = []
    for lang, header, html_lang in (("en", "en-GB,en;q=0.9", "en"),
                                    ("zh_CN", "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN")):
        for path in ("/notices", f"/notices/{slug}", f"/notices/{slug}.pdf",
                     "/notices/feed.atom"):
            asks.append((f"{path}?lang={lang}", {}, html_lang))
            asks.append((path, {"Accept-Language": header}, html_lang))
    live = {}
    for path, headers, _ in asks:  # the portal up: nginx answers what gunicorn answers
        status, sent, body = stack.get(stack.nginx_port, path, headers)
        p_status, p_sent, p_body = stack.get(stack.app_port, path, headers)
        assert (status, p_status) == (200, 200), path
        assert sent.get("X-Aftercare-Snapshot") == "hit", path
        assert body == p_body, path
        for name in (*VALIDATORS, "Content-Disposition", "Content-Security-Policy",
                     "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
            assert sent.get(name) == p_sent.get(name), (path, headers, name)
        live[(path, tuple(headers.items()))] = body
        revalidated, _, _ = stack.get(stack.nginx_port, path,
                                      {**headers, "If-None-Match": sent["ETag"]})
        assert revalidated == 304, path
        since, _, _ = stack.get(stack.nginx_port, path,
                                {**headers, "If-Modified-Since": sent["Last-Modified"]})
        assert since == 304, path

    # The outage: gunicorn, the worker and Redis stopped, the database file gone.
    for name in ("gunicorn", "worker", "redis"):
        stack.stop(name)
    moved = stack.db.with_suffix(".away")
    stack.db.rename(moved)
    status, _, _ = stack.get(stack.nginx_port, "/login")
    assert status == 502  # the portal is really gone
    for path, headers, html_lang in asks:
        status, sent, body = stack.get(stack.nginx_port, path, headers)
        assert status == 200, (path, headers)
        assert body == live[(path, tuple(headers.items()))], path
        if sent["Content-Type"].startswith("text/html"):
            assert f'<html lang="{html_lang}"' in body.decode(), (path, headers)
        if path.startswith(f"/notices/{slug}.pdf"):
            assert body.startswith(b"%PDF")

    # Back up: an update is published and nginx serves it within seconds.
    moved.rename(stack.db)
    stack.redis()
    stack.worker()
    stack.gunicorn()
    title_en, title_zh = "CRM outage: service restored", "CRM 系统故障：服务已恢复"
    done = subprocess.run([sys.executable, "-c", UPDATE_SCRIPT, str(stack.instance), slug,
                           title_en, title_zh], cwd=ROOT, env=stack.env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    published = time.monotonic()

    def updated() -> bool:
        # Polled through nginx while the worker rewrites the snapshot: always a whole page.
        status, sent, body = stack.get(stack.nginx_port, f"/notices/{slug}?lang=en")
        assert status == 200 and body.rstrip().endswith(b"</html>")
        assert int(sent["Content-Length"]) == len(body)
        return sent.get("X-Aftercare-Snapshot") == "hit" and title_en.encode() in body

    stack._wait(updated, "updated snapshot page", seconds=30)
    print(f"snapshot followed the update in {time.monotonic() - published:.1f} s")
    _, _, body = stack.get(stack.nginx_port, f"/notices/{slug}",
                           {"Accept-Language": "zh-CN"})
    assert title_zh in body.decode()
