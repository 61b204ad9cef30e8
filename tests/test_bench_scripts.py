"""The benchmarks in bench/ are run by hand, not by the suite; their imports of the portal
(many inside functions, in child processes) must still name what the portal has."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _portal_imports(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                ("portal", "tests")):
            found.extend((node.lineno, node.module, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_every_portal_name_a_bench_imports_exists(script: Path) -> None:
    missing = []
    for line, module_name, name in _portal_imports(script):
        module = importlib.import_module(module_name)
        if hasattr(module, name):
            continue
        try:
            importlib.import_module(f"{module_name}.{name}")
        except ImportError:
            missing.append(f"{script.name}:{line}: {module_name}.{name}")
    assert missing == []


def test_programme_bench_runs_in_a_tiny_mode(capsys) -> None:
    """``bench/programme.py`` runs every section on SQLite with 30 customers (the real run has
    100,000): preview, sign-off, case generation, a released batch, its pain.001 file, a bank
    result with one line rejected, and a reconciliation that balances to the cent."""
    from bench import programme

    assert programme.main(["--customers", "30", "--only", "sqlite"]) == 0
    out = capsys.readouterr().out
    assert "preview of 30 customers, 30 eligible" in out
    for step in programme.SECTIONS:
        assert f"\n{step} " in out, step
    assert "generation: 30 members, 30 cases" in out
    # Every 20th customer has no bank details (paid by the original method): 28 bank lines.
    assert "28 lines" in out
    assert "pain.001: 28 transfers, " in out and "XSD-valid, done" in out
    assert "27 paid, 1 rejected" in out
    assert "SQLite: balanced to the cent; batch CNY: expected" in out
    assert "PROBLEM" not in out and "FAIL" not in out
    assert out.count("PASS") >= 7
