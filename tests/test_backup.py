"""`flask backup` and `flask restore`: a real archive of a real database (SQLite, or PostgreSQL
with DATABASE_URL) and instance files, restored into a fresh instance and database, after
which the audit chain verifies and rows and files are the same; damaged archives and
non-empty targets are refused."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from werkzeug.datastructures import FileStorage

from portal import create_app, uow
from portal.accounts import Role
from portal.backups import restore as restoring
from portal.backups import services as backups
from portal.cases import evidence
from portal.cases import services as cases
from portal.customers import services as customers
from portal.extensions import db
from portal.main.demo_files import receipt_png
from portal.notices import publishing
from tests.conftest import make_config


def _rows() -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    found = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        found[table.name] = [tuple(r) for r in db.session.execute(
            select(table).order_by(*order))]
    return found


def _files(root: Path, archive_dir: Path) -> dict[str, str]:
    """SHA-256 of the data files under an instance (the database and backups apart)."""
    skip = {"test.db", "restored.db"}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip and archive_dir not in p.parents}


@pytest.fixture
def target(database_url: str, redis_url: str, tmp_path_factory) -> Iterator[callable]:
    """A fresh instance folder and an empty database; ``target()`` makes an app on them (call
    again after a restore: the app reads the restored key files when it starts)."""
    instance = tmp_path_factory.mktemp("restored-instance")
    url = make_url(database_url)
    admin = None
    if url.get_backend_name() == "postgresql":
        name = f"{url.database}_restore"
        admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        target_url = url.set(database=name).render_as_string(hide_password=False)
    else:
        target_url = f"sqlite:///{tmp_path_factory.mktemp('restored-db') / 'restored.db'}"
    made: list[Flask] = []

    def make() -> Flask:
        app = create_app(make_config(target_url, redis_url, instance))
        made.append(app)
        return app

    make.instance = instance  # type: ignore[attr-defined]
    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    if admin:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(target_url).database}"')


@pytest.fixture
def filled(app, users, scenario, run_worker, runner, tmp_path_factory):
    """Events, a published notice with its PDFs (kept outside the instance folder: PDF_DIR),
    a case with an evidence file, audit entries and a signed checkpoint in the checkpoint
    file."""
    app.config["PDF_DIR"] = str(tmp_path_factory.mktemp("pdf-elsewhere"))
    event, notice = scenario
    publishing.after_publication([notice.id])
    customer = customers.create_customer(event, {"external_ref": "B-1", "name": "Bao"},
                                         actor=users[Role.AGENT])
    case = cases.open_case(customer, cases.CaseInput("refund", "O-9", "12.00", "CNY", "other",
                                                     "", None), actor=users[Role.AGENT])
    evidence.add_from_staff(case, FileStorage(io.BytesIO(receipt_png()), "r.png"),
                            actor=users[Role.AGENT])
    uow.commit()
    run_worker()  # renders the notice's PDFs into the instance
    result = runner.invoke(args=["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    assert len(list(Path(app.config["PDF_DIR"]).glob("*.pdf"))) == 2, "no PDFs rendered"
    return app


def test_backup_then_restore_into_an_empty_instance(filled, runner, target, tmp_path_factory):
    app = filled
    out_dir = tmp_path_factory.mktemp("archives")
    archive = out_dir / "b.tar.gz"
    result = runner.invoke(args=["backup", str(archive)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {archive}" in result.output
    rows, files = _rows(), _files(Path(app.instance_path), out_dir)
    pdfs = _files(Path(app.config["PDF_DIR"]), out_dir)
    assert len(pdfs) == 2 and any(name.startswith("evidence/") for name in files)
    assert "audit-checkpoints.jsonl" in files and "audit_hmac_key" in files

    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert manifest["schema_revision"] == backups.schema_revision()
    listed = {m["name"]: m for m in manifest["files"]}
    assert {f"instance/{name}" for name in files} <= listed.keys()
    assert {f"external/PDF_DIR/{name}" for name in pdfs} <= listed.keys()
    assert manifest["database"]["member"] in listed

    # Never overwrites.
    again = runner.invoke(args=["backup", str(archive)])
    assert again.exit_code == 1 and "never overwrite" in again.output

    fresh = target()
    with fresh.app_context():
        restored = fresh.test_cli_runner().invoke(args=["restore", str(archive)])
        assert restored.exit_code == 0, restored.output
    # A new start reads the restored keys, as the portal would after the restore.
    after = target()
    with after.app_context():
        verify = after.test_cli_runner().invoke(args=["audit", "verify"])
        assert verify.exit_code == 0, verify.output
        assert "chain intact" in verify.output and "Matches the checkpoint" in verify.output
        assert _rows() == rows
        db.session.remove()
    # The PDFs go where the restoring portal keeps them: its default folder here.
    assert _files(target.instance, out_dir) == files | {f"pdf/{n}": d for n, d in pdfs.items()}

    # The restored instance is no longer empty: a second restore is refused.
    with after.app_context():
        refused = after.test_cli_runner().invoke(args=["restore", str(archive)])
        assert refused.exit_code == 1
        assert "The database is not empty" in refused.output


def _damaged_copy(archive: Path, into: Path, member_prefix: str) -> str:
    """A copy of ``archive`` with one byte changed in the first member under the prefix (the
    manifest untouched); the member's name."""
    changed = ""
    with tarfile.open(archive) as src, tarfile.open(into, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read()
            if not changed and info.name.startswith(member_prefix):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
                changed = info.name
            dst.addfile(info, io.BytesIO(data))
    return changed


def test_a_damaged_archive_restores_nothing(filled, runner, target, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("archives")
    archive = out_dir / "b.tar.gz"
    assert runner.invoke(args=["backup", str(archive)]).exit_code == 0
    fresh = target()
    for prefix in ("external/PDF_DIR/", "database/"):
        damaged = out_dir / f"damaged-{prefix.replace('/', '-')}.tar.gz"
        name = _damaged_copy(archive, damaged, prefix)
        with fresh.app_context():
            result = fresh.test_cli_runner().invoke(args=["restore", str(damaged)])
            assert result.exit_code == 1
            assert f"{name} is damaged" in result.output and "nothing restored" in result.output
            assert backups.database_tables() == []
            assert restoring.existing_instance_files() == []
    truncated = out_dir / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with fresh.app_context():
        result = fresh.test_cli_runner().invoke(args=["restore", str(truncated)])
        assert result.exit_code == 1 and "cannot be read" in result.output
        assert backups.database_tables() == []


def test_a_non_empty_target_is_refused(filled, runner, target, tmp_path_factory):
    archive = tmp_path_factory.mktemp("archives") / "b.tar.gz"
    assert runner.invoke(args=["backup", str(archive)]).exit_code == 0
    # Into the database it came from.
    result = runner.invoke(args=["restore", str(archive)])
    assert result.exit_code == 1 and "The database is not empty" in result.output
    # An empty database, but an instance folder already holding a file.
    fresh = target()
    (target.instance / "pdf").mkdir()
    (target.instance / "pdf" / "old.pdf").write_bytes(b"%PDF-")
    with fresh.app_context():
        result = fresh.test_cli_runner().invoke(args=["restore", str(archive)])
        assert result.exit_code == 1 and "pdf/old.pdf" in result.output
        assert backups.database_tables() == []
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1


def test_without_pg_dump_the_backup_says_so(app, runner, tmp_path_factory, monkeypatch):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("pg_dump is only needed for PostgreSQL")
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    archive = tmp_path_factory.mktemp("archives") / "b.tar.gz"
    result = runner.invoke(args=["backup", str(archive)])
    assert result.exit_code == 1
    assert "pg_dump is not on PATH" in result.output and "postgresql-client" in result.output
    assert not archive.exists()
