"""Logs and the request's own bookkeeping: a request id, one line per request, its time in
the metrics.

In production (``PORTAL_ENV=production``) or with ``LOG_FORMAT=json``, every log record goes
to stderr as one JSON object a line (python-json-logger's formatter on the standard library's
logging), carrying the request id and the signed-in user's id. Nothing logged may hold a
password, a token or an e-mail address: the request line names the endpoint and its route
pattern (``/unsubscribe/<token>``), never the URL; request bodies are never logged; and the
formatter masks e-mail addresses and the values of secret-looking fields in whatever else a
library logs.

The request id is the client's ``X-Request-ID`` when it is a plain short word (nginx can set
it: ``proxy_set_header X-Request-ID $request_id``), else a new one; the response carries it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from portal import metrics

log = logging.getLogger("portal.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
EMAIL = re.compile(r"[^\s@<>\"'(),;:]+@[^\s@<>\"'(),;:]+\.[A-Za-z]{2,}")
SECRET_KEYS = re.compile(r"pass|token|secret|key|auth|cookie|session|csrf", re.IGNORECASE)
MASK = "[masked]"
# Marks the handler this module installs, so a second app in the process replaces it.
HANDLER_NAME = "aftercare-json"


def json_wanted(app: Flask) -> bool:
    setting = str(app.config.get("LOG_FORMAT") or "").lower()
    if setting:
        return setting == "json"
    return app.config.get("PORTAL_ENV") == "production"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return EMAIL.sub("[e-mail]", value)
    if isinstance(value, dict):
        return {k: MASK if SECRET_KEYS.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


class PortalJsonFormatter(JsonFormatter):
    """One JSON object a line; e-mail addresses and secret-looking fields masked."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {k: MASK if SECRET_KEYS.search(k) else _scrub(v) for k, v in log_data.items()}


class RequestContext(logging.Filter):
    """Adds ``request_id`` and ``user_id`` to every record logged during a request (and
    ``job_id`` inside an RQ job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = None
        record.user_id = None
        if has_request_context():
            record.request_id = g.get("request_id")
            record.user_id = _user_id()
        try:
            from rq import get_current_job

            job = get_current_job()
        except Exception:  # outside a worker
            job = None
        if job is not None:
            record.job_id = job.id
        return True


def _user_id() -> int | None:
    """The signed-in staff member's id, once the request has loaded them (never loaded here:
    a log line must not query the database, which may be what failed)."""
    user = g.get("_login_user")  # where Flask-Login keeps current_user
    return user.id if user is not None and getattr(user, "is_authenticated", False) else None


def json_handler() -> logging.Handler | None:
    return next((h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME), None)


def configure(app: Flask) -> None:
    """Install the JSON handler on the root logger (once per process; a later app replaces
    it), so the portal's, Flask's, RQ's and gunicorn's error records all come out as JSON."""
    if not json_wanted(app):
        return
    root = logging.getLogger()
    old = json_handler()
    if old is not None:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(PortalJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger", "asctime": "time"},
        json_ensure_ascii=False))
    handler.addFilter(RequestContext())
    # Flask's default handler on app.logger would print the same record a second time.
    from flask.logging import default_handler

    app.logger.removeHandler(default_handler)
    root.addHandler(handler)
    root.setLevel(app.config.get("LOG_LEVEL", logging.INFO))


def _start() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish(response: Any) -> Any:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    if started is None:
        return response
    seconds = time.perf_counter() - started
    if request.endpoint != "ops.metrics":  # scrapes would swamp the figures
        metrics.observe_request(request.endpoint, response.status_code, seconds)
    log.info("request", extra={
        "method": request.method, "endpoint": request.endpoint,
        "route": request.url_rule.rule if request.url_rule else None,
        "status": response.status_code, "duration_ms": round(seconds * 1000, 1)})
    return response


def init_app(app: Flask) -> None:
    configure(app)
    # First of all the hooks (CSRF's is registered earlier and may refuse the request).
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None
