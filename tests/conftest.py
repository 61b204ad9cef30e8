"""Fixtures: a real database (SQLite by default, PostgreSQL with DATABASE_URL), a private
real Redis, the app, clients signed in per role, an RQ worker, a local SMTP server and a
live server for the browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g, has_app_context, request_started
from flask.testing import FlaskClient
from flask_migrate import upgrade
from redis import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from portal import create_app, uow
from portal.accounts import Role, User
from portal.auth import services as auth_services
from portal.extensions import db
from tests.mail_helpers import start_server
from tests.notice_helpers import make_event, make_notice
from tests.notice_helpers import publish as publish_notice

PASSWORD = "correct-horse-battery"


def _database_url(tmp: Path) -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{tmp / 'test.db'}"
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    name = make_url(url).database or ""
    if "test" not in name and "ci" not in name:
        pytest.exit(f"Refusing to run tests on database {name!r}: its name must contain "
                    "'test' or 'ci', because the tests empty it.", returncode=2)
    return url


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aftercare-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(tmp_root: Path) -> Iterator[str]:
    """A private redis-server on a unix socket, so tests never touch anyone else's data."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.exit("redis-server is not installed; run `make test`, which installs it.", 2)
    sock = tmp_root / "redis.sock"
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_root)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if time.monotonic() > deadline:
            proc.kill()
            pytest.exit("redis-server did not start", 2)
        time.sleep(0.02)
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(timeout=10)


def make_config(database_url: str, redis_url: str, instance: Path, **extra: Any) -> dict[str, Any]:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RQ_ASYNC": True,  # jobs go through real Redis and a real worker, never inline
        "BABEL_DEFAULT_LOCALE": "en",  # tests read English unless they ask for Chinese
        "WTF_CSRF_ENABLED": False,
        "PASSWORD_METHOD": "pbkdf2:sha256:1000",  # fast hashing; production uses scrypt
        "SMTP_PORT": 0,
        "INSTANCE_PATH": str(instance),
    }
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def database_url(tmp_root: Path, redis_url: str) -> str:
    """Empty the test database and build it with the migrations, once per run."""
    url = _database_url(tmp_root)
    app = create_app(make_config(url, redis_url, tmp_root))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()
    return url


def _fresh_g(sender: Flask, **_: Any) -> None:
    """Tests hold an app context open across requests; give each request an empty ``g``
    (the signed-in user, the locale, the CSRF token), as its own app context would."""
    for key in list(g):
        g.pop(key)


def empty_database() -> None:
    """Remove every row (the audit trail included, bypassing its append-only guard)."""
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    db.session.remove()
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


class CommittingClient(FlaskClient):
    """What the test did itself (services, helpers) is its own unit of work: committed before
    each request it makes, as a real client's request starts from committed data."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            uow.commit()
        return super().open(*args, **kwargs)


@pytest.fixture
def app_factory(database_url: str, redis_url: str, tmp_path: Path):
    created: list[Flask] = []

    def factory(**extra: Any) -> Flask:
        app = create_app(make_config(database_url, redis_url, tmp_path, **extra))
        request_started.connect(_fresh_g, app)
        app.test_client_class = CommittingClient
        created.append(app)
        return app

    yield factory
    for app in created:
        with app.app_context():
            empty_database()
            db.engine.dispose()
    Redis.from_url(redis_url).flushall()


@pytest.fixture
def app(app_factory) -> Iterator[Flask]:
    app = app_factory()
    with app.app_context():
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def users(app: Flask) -> dict[Role, User]:
    """One active account per role, all with the password ``PASSWORD``. They are not e-mailed
    about their work (the tests that count the messages a server received would count those
    too); the notification tests switch it on."""
    made = {}
    for role in Role:
        user, _ = auth_services.create_user(
            f"{role.value}@example.com", f"{role.value.title()} Tester", role, PASSWORD,
            must_change_password=False,
        )
        user.notify_by_email = False
        made[role] = user
    db.session.commit()  # the accounts exist for every connection (live server, other apps)
    return made


class AuthActions:
    def __init__(self, client: FlaskClient, users: dict[Role, User]) -> None:
        self._client = client
        self.users = users

    def login(self, role: Role | str = Role.AGENT, password: str = PASSWORD, **kw: Any):
        email = self.users[Role(role)].email if isinstance(role, Role | str) else role
        return self._client.post("/login", data={"email": email, "password": password}, **kw)

    def logout(self):
        return self._client.post("/logout")


@pytest.fixture
def auth(client: FlaskClient, users: dict[Role, User]) -> AuthActions:
    return AuthActions(client, users)


@pytest.fixture
def run_worker(app: Flask):
    """Run the queued jobs with a real RQ SimpleWorker in burst mode, in this process."""
    from portal.extensions import rq
    from portal.mailings.cli import PromptlyStoppingWorker

    def run() -> None:
        queues = list(rq.queues.values())
        worker = PromptlyStoppingWorker(queues, connection=queues[0].connection,
                                        job_class=queues[0].job_class)
        uow.commit()  # the jobs read what the test wrote (and what it queued goes out now)
        worker.work(burst=True)
        db.session.expire_all()  # see what the jobs committed

    return run


@pytest.fixture
def smtp_server(tmp_path: Path):
    """A real aiosmtpd server on a free port, keeping messages under tmp_path/mail."""
    import socket

    from portal.mail import devsmtp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = tmp_path / "mail"
    controller = devsmtp.start(directory, "127.0.0.1", port)
    yield {"host": "127.0.0.1", "port": port, "dir": directory}
    controller.stop()


@pytest.fixture
def live_server(app_factory):
    """The app served by a real HTTP server in a thread, for the browser tests."""
    from werkzeug.serving import make_server

    app = app_factory(WTF_CSRF_ENABLED=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["LIVE_URL"] = f"http://127.0.0.1:{server.server_port}"
    yield app
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def scenario(app, users):
    """An event with a published notice (the mailing tests' starting point)."""
    event = make_event()
    notice = make_notice(users, event)
    publish_notice(notice, users)
    db.session.commit()
    return event, notice


@pytest.fixture
def smtp(app, tmp_path: Path):
    """A scripted real SMTP server the app sends to; ``smtp(...)`` restarts it with a script."""
    servers = []

    def serve(**script):
        controller, handler, port = start_server(tmp_path / f"mail{len(servers)}", **script)
        servers.append(controller)
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_USERNAME="",
                          MAILING_RETRY_BASE_SECONDS=0.05, MAILING_RETRY_INLINE_SECONDS=5)
        return handler

    yield serve
    for controller in servers:
        controller.stop()
