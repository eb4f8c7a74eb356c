"""Audit presets in conf/audit/: each composes against the typed schema, selects only registered scans and
benchmarks, quick is the default, and full selects every scan and every benchmark that has a config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from deepsight.config import register_configs

CONF = Path(__file__).resolve().parent.parent / "conf"
PRESETS = sorted(p.stem for p in (CONF / "audit").glob("*.yaml"))


def _compose(overrides: list[str]):
    register_configs()
    with initialize_config_module(config_module="deepsight.conf", version_base=None):
        return compose("config", overrides=overrides)


def _selection(cfg) -> tuple[set[str], set[str]]:
    return {k for k, v in cfg.scan.items() if v is not None}, set(cfg.eval.keys())


def _registered() -> tuple[set[str], set[str]]:
    import deepsight.diagnostics.all  # noqa: F401
    import deepsight.evals.all  # noqa: F401
    from deepsight.diagnostics.registry import SCANS
    from deepsight.evals.registry import BENCHMARKS

    return set(SCANS), set(BENCHMARKS)


def test_expected_presets_exist():
    assert {"none", "quick", "standard", "full"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_and_selects_registered_stages(preset):
    cfg = _compose([f"audit={preset}"])
    assert cfg.audit_name == preset
    scans, evals = _selection(cfg)
    known_scans, known_evals = _registered()
    assert scans <= known_scans, scans - known_scans
    assert evals <= known_evals, evals - known_evals


def test_quick_is_the_default_and_presets_nest():
    assert _compose([]).audit_name == "quick"
    quick, standard, full = (_selection(_compose([f"audit={p}"])) for p in ("quick", "standard", "full"))
    assert quick[0] <= standard[0] <= full[0]
    assert quick[1] <= standard[1] <= full[1]
    assert standard[1], "standard runs some benchmarks"


def test_full_selects_every_configured_scan_and_benchmark():
    scans, evals = _selection(_compose(["audit=full"]))
    known_scans, known_evals = _registered()
    configured_scans = {p.stem for p in (CONF / "scan").glob("*.yaml")}
    configured_evals = {p.stem for p in (CONF / "eval").glob("*.yaml")}
    assert scans == configured_scans & known_scans
    assert evals == configured_evals & known_evals
    # full keeps the spec's reference sizes and runs every item of every benchmark
    cfg = _compose(["audit=full"])
    assert cfg.scan.xboundary.n_per_class == 200
    assert {name: b.limit for name, b in cfg.eval.items()} == {name: None for name in evals}


def test_presets_combine_with_hardware_and_model_overrides():
    cfg = _compose(["audit=full", "hardware=multi_gpu", "model=llama3_8b"])
    assert cfg.model.device_map == "auto" and cfg.hardware.free_between_phases
    assert cfg.audit_name == "full"
    cfg = _compose(["audit=standard", "scan.xboundary.n_per_class=50", "data_dir=/data"])
    assert cfg.scan.xboundary.n_per_class == 50 and cfg.data_dir == "/data"
