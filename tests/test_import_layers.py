"""Imports run one way: no module of deepsight/ (or kernels/) imports a package above its own layer.

Layers, bottom to top (a package may import its own layer and the ones below):
util, errors -> config -> models -> capture, stats, kernels, data -> generation -> judges ->
diagnostics, evals -> report -> logging -> run -> cli. This is the data flow
config -> models -> capture/stats/kernels -> diagnostics/evals -> run -> report, with two
placements the code forces: ``run`` orchestrates every phase and calls the report writer
(report renders what run recorded, and never imports run), and ``report/figures.py`` is a
plotting helper the scans draw with, so it sits with the statistics. Imports inside functions
count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"util", "errors"},
    {"config"},
    {"models"},
    {"capture", "stats", "kernels", "data", "report.figures"},
    {"generation"},
    {"judges"},
    {"diagnostics", "evals"},
    {"report"},
    {"logging"},
    {"run"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def unit_of(parts: tuple[str, ...]) -> str:
    """The layer unit of ``deepsight.<parts>``: its package, or ``report.figures`` on its own."""
    if parts[:2] == ("report", "figures"):
        return "report.figures"
    return parts[0].removesuffix(".py")


def modules():
    for f in sorted((ROOT / "deepsight").rglob("*.py")):
        yield f, f.relative_to(ROOT / "deepsight").with_suffix("").parts
    for f in sorted((ROOT / "kernels").rglob("*.py")):
        yield f, ("kernels",) + f.relative_to(ROOT / "kernels").with_suffix("").parts


def imported(tree: ast.AST, parts: tuple[str, ...], is_pkg: bool):
    """(line, dotted name below deepsight) for every import of a deepsight module in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                pkg = parts if is_pkg else parts[:-1]
                base = pkg[: len(pkg) - (node.level - 1)]
                names = [".".join(("deepsight",) + base + ((node.module,) if node.module else ()))]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.startswith("deepsight."):
                yield node.lineno, tuple(name.split(".")[1:])


def upward_imports() -> list[str]:
    bad = []
    for f, parts in modules():
        is_pkg = parts[-1] == "__init__"
        own = unit_of(parts if not is_pkg or len(parts) > 1 else ("__init__",))
        assert own in RANK, f"{f}: package {own!r} has no layer in tests/test_import_layers.py"
        for line, target in imported(ast.parse(f.read_text(encoding="utf-8")), parts, is_pkg):
            dep = unit_of(target)
            assert dep in RANK, f"{f}:{line}: imports deepsight.{'.'.join(target)}, which has no layer"
            if RANK[dep] > RANK[own]:
                bad.append(f"{f.relative_to(ROOT)}:{line}: {own} imports deepsight.{'.'.join(target)} (higher layer)")
    return bad


def test_no_upward_imports():
    bad = upward_imports()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_walk_finds_an_upward_import(tmp_path, monkeypatch):
    """The checker itself can fail: a planted upward import (absolute and relative) is reported."""
    pkg = tmp_path / "deepsight"
    (pkg / "util").mkdir(parents=True)
    (pkg / "report").mkdir()
    (tmp_path / "kernels").mkdir()
    (pkg / "util" / "bad.py").write_text("def f():\n    from deepsight.run.outputs import RunRecorder\n")
    (pkg / "report" / "ok.py").write_text("from deepsight.util.atomic import atomic_write_text\n")
    (pkg / "report" / "rel.py").write_text("from ..run import audit\n")
    (pkg / "report" / "figures.py").write_text("from deepsight.stats import gram\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    bad = sorted(upward_imports())
    assert len(bad) == 2 and "report/rel.py:1: report imports deepsight.run" in bad[0], bad
    assert "util/bad.py:2: util imports deepsight.run.outputs" in bad[1], bad


@pytest.mark.parametrize("module", ["atomic", "jsonable", "progress", "scrub"])
def test_util_helpers_live_at_the_bottom(module):
    f = ROOT / "deepsight" / "util" / f"{module}.py"
    deps = {unit_of(t) for _, t in imported(ast.parse(f.read_text()), ("util", module), False)}
    assert deps <= {"util", "errors"}, deps
