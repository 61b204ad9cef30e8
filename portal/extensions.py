"""Flask extensions, created once and bound to the app in ``create_app``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import has_request_context, request
from flask_babel import Babel
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_rq import RQ
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx = HTMX()
rq = RQ()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in WAL mode: readers (the web pages) never wait for writers (the mail workers),
    and a writer waits its turn instead of failing with "database is locked"."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


# In WAL mode a transaction that has read and then writes cannot wait for the lock: when
# another writer committed in between, SQLite refuses at once ("database is locked"), whatever
# the busy timeout. So a unit of work that is going to write takes the lock when it begins
# (BEGIN IMMEDIATE) and waits its turn: every request but GET/HEAD/OPTIONS, and jobs inside
# ``writing()``. Everything else is left to the driver, which runs reads outside a transaction
# (so they see the newest commit and never wait) and begins one before the first write.
_writing: ContextVar[bool] = ContextVar("writing", default=False)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@contextmanager
def writing() -> Iterator[None]:
    """Transactions begun inside this block are writers (on SQLite: BEGIN IMMEDIATE)."""
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


def _begins_writing() -> bool:
    if _writing.get():
        return True
    return has_request_context() and request.method not in READ_METHODS


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn: Any) -> None:
    if conn.dialect.name == "sqlite" and _begins_writing():
        conn.exec_driver_sql("BEGIN IMMEDIATE")
