"""`deepsight audit=none scan=[experts] model=tiny_moe_qwen3` end to end (the fixture model built from its
config.json with random weights): X-Boundary classes with the ablation arms, and classes from eval verdicts;
the audit presets select the scan with the ablation on in standard/full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module

from deepsight.config import register_configs

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], tmp_path: Path, data_dir: Path) -> dict:
    env = dict(os.environ, DEEPSIGHT_OUTPUT_DIR=str(tmp_path / "out"), OMP_NUM_THREADS="1")
    env.pop("WANDB_API_KEY", None)
    out = subprocess.run([sys.executable, "-m", "deepsight", "audit=none", "scan=[experts]", "model=tiny_moe_qwen3",
                          f"data_dir={data_dir}", "hydra.run.dir=" + str(tmp_path / "run"), *args],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((tmp_path / "run" / "results.json").read_text())


def test_cli_xboundary_classes_with_ablation(tmp_path, data_dir):
    res = _run(["scan.experts.n_per_class=6", "scan.experts.ablate_top=3", "scan.experts.ablate_random=3",
                "scan.experts.ablation_limit=2", "scan.experts.ablation_max_new_tokens=4"], tmp_path, data_dir)
    scan = res["scans"]["experts"]
    assert scan["status"] == "ok", scan
    d = scan["details"]
    assert d["classes"] == ["harmful", "safe", "boundary"] and d["class_counts"] == {"harmful": 6, "safe": 6,
                                                                                      "boundary": 6}
    assert d["layers"] == [0, 1, 2, 3] and len(d["top_experts"]) == 20
    m = d["matrices"]["0"]["prompt"]
    assert len(m["activation_rate"]) == 3 and len(m["activation_rate"][0]) == 16
    for row in m["activation_rate"]:  # every token selects top-4 experts
        assert abs(sum(row) - 4.0) < 1e-4
    assert set(d["ablation"]) == {"none", "top", "random"}
    assert d["ablation"]["top"]["masked_experts"] == 3 and d["ablation_full"]["prompts"] == 4
    assert all(row["n"] + row["unknown"] == 4 for row in d["ablation"].values())  # empty replies: unknown
    assert 0.0 <= scan["metrics"]["top_expert_stability"] <= 1.0
    assert (tmp_path / "run" / scan["figures"][0]).is_file()
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## MoE safety experts" in report and "| random |" in report


def test_cli_classes_from_eval_verdicts(tmp_path, data_dir):
    res = _run(["scan.experts.classes_from=eval:xstest", "scan.experts.eval_limit=5", "generation.max_new_tokens=4",
                "scan.experts.expert_outputs=false"], tmp_path, data_dir)
    scan = res["scans"]["experts"]
    assert scan["status"] == "ok", scan
    d = scan["details"]
    assert d["classes"] == ["refused", "complied"]
    src = d["class_source"]
    assert src["benchmark"] == "xstest" and src["items"] == 5
    assert sum(d["class_counts"].values()) + src["unknown_excluded"] == 5
    assert (tmp_path / "run" / "generations" / "xstest.jsonl").is_file()


def test_presets_select_experts_with_ablation():
    register_configs()
    with initialize_config_module(config_module="deepsight.conf", version_base=None):
        quick = compose("config", overrides=["audit=quick"])
        standard = compose("config", overrides=["audit=standard"])
        full = compose("config", overrides=["audit=full"])
    assert quick.scan.get("experts") is None
    for cfg in (standard, full):
        assert cfg.scan.experts.ablate_top > 0 and cfg.scan.experts.ablate_random > 0


def test_cli_ablation_split_over_two_ranks_equals_one_process(tmp_path, data_dir):
    """hardware.processes=2: each rank answers its share of the ablation prompts; the gathered table (counts,
    known verdicts, flips) equals the one-process run's, and both summaries count all 6 prompts."""
    args = ["scan.experts.n_per_class=4", "scan.experts.ablate_top=2", "scan.experts.ablate_random=2",
            "scan.experts.ablation_limit=3", "scan.experts.ablation_max_new_tokens=4",
            "scan.experts.expert_outputs=false"]
    one = _run(args, tmp_path / "one", data_dir)["scans"]["experts"]
    two = _run([*args, "hardware.processes=2"], tmp_path / "two", data_dir)["scans"]["experts"]
    assert one["status"] == two["status"] == "ok", (one, two)
    a, b = one["details"]["ablation_full"], two["details"]["ablation_full"]
    assert a["prompts"] == b["prompts"] == 6
    for arm in ("none", "top", "random"):
        ra, rb = a["arms"][arm], b["arms"][arm]
        assert ra["refusal_rate"]["n"] <= 6
        for key in ("count", "n"):
            assert ra["refusal_rate"][key] == rb["refusal_rate"][key], (arm, key)
        assert ra["flips_vs_none"] == rb["flips_vs_none"] and ra["masked"] == rb["masked"]
    for row in two["details"]["ablation"].values():
        assert row["n"] + row["unknown"] == 6

    def generated(run: Path) -> int:
        lines = (run / "generations" / "experts_ablation_none.jsonl").read_text().splitlines()
        return sum(json.loads(line).get("kind") == "generation" for line in lines if line.strip())

    # rank 0 answered only its share (the other rank's part was gathered, not generated here)
    assert generated(tmp_path / "one" / "run") == 6 and 0 < generated(tmp_path / "two" / "run") < 6
