"""The shipped nginx configuration sends HSTS on every HTTPS answer."""

from __future__ import annotations

from pathlib import Path

import crossplane

CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx-aftercare.conf"
HSTS = "Strict-Transport-Security"


def _https_server() -> dict:
    parsed = crossplane.parse(str(CONF), single=True, check_ctx=False, check_args=False)
    assert parsed["status"] == "ok", parsed["errors"]
    servers = [d for d in parsed["config"][0]["parsed"] if d["directive"] == "server"]
    (https,) = [s for s in servers if any(d["directive"] == "listen" and "ssl" in d["args"]
                                          for d in s["block"])]
    return https


def _headers(block: list[dict]) -> list[list[str]]:
    return [d["args"] for d in block if d["directive"] == "add_header"]


def test_every_https_location_sends_hsts_always() -> None:
    server = _https_server()
    server_headers = _headers(server["block"])
    locations = [d for d in server["block"] if d["directive"] == "location"]
    assert locations
    for location in locations:
        # nginx inherits add_header from the server only into a location that has none.
        effective = _headers(location["block"]) or server_headers
        hsts = [args for args in effective if args[0] == HSTS]
        assert hsts, f"location {' '.join(location['args'])} sends no {HSTS}"
        value, *flags = hsts[0][1:]
        assert flags == ["always"]  # also on errors, e.g. a 502 while gunicorn restarts
        max_age = int(value.split("max-age=")[1].split(";")[0])
        assert max_age >= 31536000
