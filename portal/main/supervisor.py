"""The development supervisor behind `flask --app portal devserver` (`make run`): it starts
the portal's processes and restarts one that stopped, with back-off, instead of stopping the
others (a mail worker that lost Redis must not take the public pages down with it)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: tuple[str, ...]
    before_start: Callable[[], None] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    wait: float = 0.0
    restarts: int = 0
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    """Children run in sessions of their own, so each is stopped with all it started."""

    def __init__(self, env: dict[str, str], *, min_wait: float = 1.0, max_wait: float = 30.0,
                 steady_after: float = 60.0) -> None:
        self.env = env
        self.children: list[Child] = []
        self.min_wait, self.max_wait, self.steady_after = min_wait, max_wait, steady_after

    def spawn(self, name: str, *argv: str,
              before_start: Callable[[], None] | None = None) -> Child:
        child = Child(name, argv, before_start, wait=self.min_wait)
        self.children.append(child)
        self._start(child)
        return child

    def _start(self, child: Child) -> None:
        if child.before_start is not None:
            child.before_start()
        child.proc = subprocess.Popen(child.argv, env=self.env, start_new_session=True)
        child.started_at, child.restart_at = time.monotonic(), None

    def check(self) -> list[Child]:
        """Restart the children that stopped, each once its back-off has passed (it doubles
        while a child keeps stopping, and starts again from the minimum once it ran steadily);
        returns the ones restarted now."""
        restarted = []
        now = time.monotonic()
        for child in self.children:
            assert child.proc is not None
            code = child.proc.poll()
            if code is None:
                continue
            if child.restart_at is None:
                steady = now - child.started_at > self.steady_after
                child.wait = self.min_wait if steady or not child.exit_codes \
                    else min(child.wait * 2, self.max_wait)
                child.restart_at = now + child.wait
                child.exit_codes.append(code)
                log.warning("%s stopped (exit %s); starting it again in %.1f s", child.name,
                            code, child.wait)
            if now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                restarted.append(child)
        return restarted

    def run(self, interval: float = 0.5) -> None:
        """Watch the children until interrupted (KeyboardInterrupt)."""
        while True:
            self.check()
            time.sleep(interval)

    def stop(self, timeout: float = 10) -> None:
        """Stop every child, the last started first."""
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                os.killpg(child.proc.pid, signal.SIGTERM)
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
