"""Probe an Aftercare health URL (/healthz or /readyz) for systemd units (deploy/*.service).

  healthcheck.py --wait 60 URL               until URL answers 200, at most 60 s (ExecStartPost)
  healthcheck.py --tries 3 --restart UNIT URL  3 probes 2 s apart; all failing: restart UNIT

Exit 0 when URL answered 200, else 1 (after the restart, when one was asked for). Standard
library only, so it runs with any Python 3 on the host.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import urllib.error
import urllib.request


def probe(url: str, timeout: float) -> str | None:
    """None when ``url`` answers 200, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--wait", type=float, default=0,
                        help="keep probing up to this many seconds")
    parser.add_argument("--tries", type=int, default=1, help="probes, 2 s apart")
    parser.add_argument("--timeout", type=float, default=5, help="seconds per probe")
    parser.add_argument("--restart", metavar="UNIT", help="systemctl restart UNIT on failure")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    tries = 0
    while True:
        tries += 1
        problem = probe(args.url, args.timeout)
        if problem is None:
            return 0
        if tries >= args.tries and time.monotonic() >= deadline:
            break
        time.sleep(0.5 if args.wait else 2)
    print(f"{args.url}: {problem} ({tries} probe(s))", file=sys.stderr)
    if args.restart:
        print(f"restarting {args.restart}", file=sys.stderr)
        subprocess.run(["systemctl", "restart", args.restart], check=False)
    return 1


if __name__ == "__main__":
    sys.exit(main())
