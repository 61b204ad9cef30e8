"""``/healthz``, ``/readyz`` and ``/metrics``: for machines (a load balancer, systemd,
Prometheus), not people. Public as far as sign-in goes, outside rate limits and CSRF (GET
only), never cached; the bodies say ok or failing per check and nothing else."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST

from portal import metrics
from portal.extensions import csrf, limiter, rq
from portal.ops import services
from portal.security import PUBLIC, access

bp = Blueprint("ops", __name__)
csrf.exempt(bp)
limiter.exempt(bp)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/healthz")
@access(PUBLIC)
def healthz() -> ResponseReturnValue:
    """The process is alive and answers; asks nothing else (a restart would not help)."""
    return _no_store(jsonify(status=services.OK))


@bp.route("/readyz")
@access(PUBLIC)
def readyz() -> ResponseReturnValue:
    """200 when the database, Redis and a worker of each queue answer; else 503, naming the
    checks that fail."""
    result = services.readiness()
    response = jsonify(status=services.OK if result.ready else services.FAILING,
                       checks=result.checks)
    response.status_code = 200 if result.ready else 503
    return _no_store(response)


def _token_given() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@bp.route("/metrics", endpoint="metrics")
@access(PUBLIC)  # the bearer token below is the credential, as Prometheus sends it
def metrics_view() -> ResponseReturnValue:
    """Prometheus's text format, for ``Authorization: Bearer <METRICS_TOKEN>``. Without a
    token configured the endpoint does not exist (404); a missing or wrong token gets 401."""
    expected = current_app.config.get("METRICS_TOKEN") or ""
    if not expected:
        abort(404)
    if not hmac.compare_digest(_token_given().encode(), expected.encode()):
        response = Response("unauthorized\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return _no_store(response)
    body = metrics.exposition(rq.queues.values())
    return _no_store(Response(body, content_type=CONTENT_TYPE_LATEST))
