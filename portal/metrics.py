"""Prometheus metrics (``prometheus-client``), served at ``/metrics`` by ``portal.ops``.

Each process counts what it does: the web workers their requests and failed sign-ins, the RQ
workers (and their work horses) their jobs, mail messages, re-queues and PDF renders. With
``PROMETHEUS_MULTIPROC_DIR`` set (to an empty directory, before Python starts: gunicorn's
workers and the RQ work horses are separate processes), prometheus-client keeps each
process's values in files there and a scrape adds them up; without it (development, the
tests) the values live in this process only. Queue depths are read from Redis when scraped.

Labels are bounded: an endpoint name (never a URL, which may carry a token), a status class,
a queue, a result.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

REQUEST_SECONDS = Histogram(
    "aftercare_request_seconds", "Time to answer a request, by endpoint and status class.",
    ["endpoint", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
JOB_SECONDS = Histogram(
    "aftercare_job_seconds", "Time an RQ job ran, by queue and result (ok or failed); its "
    "_count counts the jobs.", ["queue", "result"],
    buckets=(0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0))
MAIL_MESSAGES = Counter(
    "aftercare_mailing_messages", "Mailing messages handed to the SMTP server (sent) or not "
    "(failed: a refusal or an error, retried or not).", ["result"])
REQUEUED = Counter(
    "aftercare_reconciler_requeued", "Jobs the reconciler queued again because Redis had "
    "lost them, by reconciler.", ["reconciler"])
PDF_SECONDS = Histogram(
    "aftercare_pdf_render_seconds", "Time WeasyPrint took to draw one PDF.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0))
LOGIN_FAILURES = Counter("aftercare_login_failures", "Refused staff sign-ins.")

# Pre-create the label sets a dashboard expects, so they read 0 rather than missing.
for _result in ("sent", "failed"):
    MAIL_MESSAGES.labels(result=_result)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def observe_request(endpoint: str | None, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(endpoint=endpoint or "none", status=status_class(status)).observe(
        seconds)


def observe_job(queue: str, ok: bool, seconds: float) -> None:
    JOB_SECONDS.labels(queue=queue, result="ok" if ok else "failed").observe(seconds)


def mail_sent() -> None:
    MAIL_MESSAGES.labels(result="sent").inc()


def mail_failed() -> None:
    MAIL_MESSAGES.labels(result="failed").inc()


def requeued(reconciler: str, count: int) -> None:
    if count:
        REQUEUED.labels(reconciler=reconciler).inc(count)


def login_failed() -> None:
    LOGIN_FAILURES.inc()


@contextmanager
def pdf_render() -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        PDF_SECONDS.observe(time.perf_counter() - start)


class QueueDepths(Collector):
    """The number of jobs waiting in each queue and in its failed registry, read from Redis
    at each scrape (one process asks; no process needs to keep a gauge)."""

    def __init__(self, queues: Iterable[Any]) -> None:
        self.queues = list(queues)

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily("aftercare_queue_depth", "Jobs waiting in an RQ queue.",
                                    labels=["queue"])
        failed = GaugeMetricFamily("aftercare_queue_failed", "Jobs in an RQ queue's failed "
                                   "registry.", labels=["queue"])
        up = GaugeMetricFamily("aftercare_redis_up", "1 when Redis answered this scrape.")
        try:
            for queue in self.queues:
                waiting.add_metric([queue.name], queue.count)
                failed.add_metric([queue.name], queue.failed_job_registry.count)
            up.add_metric([], 1)
        except Exception:  # Redis away: the scrape still answers, saying so
            up.add_metric([], 0)
            yield up
            return
        yield from (waiting, failed, up)


def exposition(queues: Iterable[Any]) -> bytes:
    """The text a scrape reads: every process's values (multi-process mode) or this
    process's, then the queue depths."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    depths = CollectorRegistry()
    depths.register(QueueDepths(queues))
    return counted + generate_latest(depths)
