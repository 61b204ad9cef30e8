"""The databases a benchmark measures on: a fresh PostgreSQL database per run, migrated in a
child process (so the parent's memory and imports stay its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new database ``aftercare_bench_<pid>``, dropped afterwards; yields its URL."""
    import psycopg

    name = f"aftercare_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+psycopg://{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str, instance: Path) -> None:
    """Build the schema in a child process."""
    code = ("import sys; sys.path.insert(0, sys.argv[3]); from portal import create_app; "
            "from flask_migrate import upgrade; app = create_app({'SECRET_KEY': 'x', "
            "'SQLALCHEMY_DATABASE_URI': sys.argv[1], 'INSTANCE_PATH': sys.argv[2]});\n"
            "with app.app_context(): upgrade()")
    subprocess.run([sys.executable, "-c", code, url, str(instance), str(ROOT)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
