"""Measure personalised letters against DESIGN.md ("Targets"): 1,000 personalised letters in
one job < 60 s, linear in count (here: the 1,000 run takes at most 11× the 100 run).

Run from the checkout: ``.venv/bin/python bench/letters.py``. For each size (100 and 1,000
letters) a fresh child process builds a SQLite database (a temporary file, migrated), an event
with a notice legal approved and that many customers (a third English, each with a case),
starts a letter run through the service and renders it with the shared document job's body
(``documents.render_document_job``, called directly: no Redis), with the ZIP of one PDF per
customer unless ``--no-zip``. It prints, side by side, the seconds, seconds per letter, pages,
PDF size and the child's peak RSS, the ratio of the two runs, and PASS/FAIL against the
targets. It is a measurement, not a test: it exits 0 whatever the numbers.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.databases import migrate  # noqa: E402

SIZES = (100, 1000)
TARGET_SECONDS = 60.0
MAX_RATIO = 11.0


def child(count: int, with_zip: bool) -> dict[str, Any]:
    """Build, start and render one run of ``count`` letters in this process."""
    from sqlalchemy import insert

    from bench import scenario
    from portal import create_app, documents, uow
    from portal.cases.models import Case
    from portal.customers.models import Customer
    from portal.extensions import db
    from portal.letters import pdf as letter_pdf
    from portal.letters import services as letters
    from portal.letters.models import LetterRun
    from portal.models import utcnow

    instance = Path(tempfile.mkdtemp(prefix="bench-letters-"))
    url = f"sqlite:///{instance / 'bench.db'}"
    migrate(url, instance)
    app = create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url,
                      "REDIS_URL": f"unix://{instance / 'no-redis.sock'}",
                      "INSTANCE_PATH": str(instance)})
    with app.app_context():
        agent, event, notice = scenario.approved_notice({
            "zh_CN": {"title": "CRM 系统故障通知",
                      "body": "CRM 系统不可用，出金申请请致电 **400-800-1234**。\n\n"
                              + "我们正在处理，赔偿将按方案发放。" * 12},
            "en": {"title": "CRM outage",
                   "body": "The CRM is down; for withdrawals call **400-800-1234**.\n\n"
                           + "We are working on it; compensation follows the programme. " * 8}})
        scenario.add_customers(event.id, count)
        now = utcnow()
        ids = db.session.scalars(db.select(Customer.id).order_by(Customer.id)).all()
        db.session.execute(insert(Case), [
            {"ref": f"C-2026-{n:05d}", "event_id": event.id, "customer_id": cid,
             "kind": "compensation", "order_ref": f"O-{n}", "amount": "1280.50",
             "currency": "CNY", "reason": "service_outage", "description": "", "status": "new",
             "due_at": now, "created_at": now, "updated_at": now, "lock_version": 1}
            for n, cid in enumerate(ids)])
        run = letters.start(event, f"notice:{notice.latest_version.id}", with_zip=with_zip,
                            actor=agent)
        uow.commit()
        run_id = run.id
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        documents.render_document_job(letter_pdf.PIPELINE.name, run_id)
        seconds = time.perf_counter() - started
        run = db.session.get(LetterRun, run_id)
        path = documents.stored_path(run.sha256) if run.sha256 else None
        pages = 0
        if path is not None:
            from pypdf import PdfReader

            pages = len(PdfReader(path).pages)
        return {"count": count, "status": run.status, "error": run.error, "seconds": seconds,
                "pages": pages, "pdf_mb": (run.size or 0) / 1e6,
                "zip_mb": (run.zip_size or 0) / 1e6,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "peak_before_mb": rss_before}


def run_child(count: int, with_zip: bool) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", str(count)]
                         + ([] if with_zip else ["--no-zip"]),
                         capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"the {count} run failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int)
    parser.add_argument("--no-zip", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, not args.no_zip)))
        return 0
    runs = [run_child(count, not args.no_zip) for count in SIZES]
    print(f"letters (one job, {'with' if not args.no_zip else 'without'} the ZIP of one PDF "
          "per customer; SQLite; peak RSS of the child process)")
    print(f"{'letters':>8} {'status':>7} {'seconds':>8} {'s/letter':>9} {'pages':>6} "
          f"{'PDF MB':>7} {'ZIP MB':>7} {'peak RSS MB':>12} {'before':>7}")
    for r in runs:
        print(f"{r['count']:>8,} {r['status']:>7} {r['seconds']:>8.2f} "
              f"{r['seconds'] / r['count']:>9.4f} {r['pages']:>6} {r['pdf_mb']:>7.2f} "
              f"{r['zip_mb']:>7.2f} {r['peak_mb']:>12.1f} {r['peak_before_mb']:>7.1f}")
        if r["error"]:
            print(f"  error: {r['error']}")
    small, large = runs
    ratio = large["seconds"] / small["seconds"] if small["seconds"] else float("inf")
    linear = ratio <= MAX_RATIO
    fast = large["status"] == "done" and large["seconds"] < TARGET_SECONDS
    print(f"1,000 letters in {large['seconds']:.1f} s (target < {TARGET_SECONDS:.0f} s): "
          f"{'PASS' if fast else 'FAIL'}")
    print(f"ratio 1,000 / 100 = {ratio:.2f}× (linear: ≤ {MAX_RATIO:.0f}×): "
          f"{'PASS' if linear else 'FAIL'}")
    print(f"peak RSS {small['peak_mb']:.1f} MB at 100, {large['peak_mb']:.1f} MB at 1,000 "
          f"(+{large['peak_mb'] - small['peak_mb']:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
