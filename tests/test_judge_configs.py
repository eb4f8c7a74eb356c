"""Every registered judge that needs a model has a conf/judge yaml that composes against the typed schema and
names a checkpoint (``judge=<name>``, or ``judge=<family>`` for judges that share one model), and every
conf/judge yaml selects a registered judge or judge family."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from deepsight.config import register_configs
from deepsight.judges.factory import JUDGE_FAMILIES, JUDGE_NAMES, LLM_JUDGES, JudgeFactory

CONF = Path(__file__).resolve().parent.parent / "conf" / "judge"
YAMLS = sorted(p.stem for p in CONF.glob("*.yaml"))
NEEDS_MODEL = sorted([*LLM_JUDGES, "flames_scorer"])


def _judge_cfg(option: str):
    register_configs()
    with initialize_config_module(config_module="deepsight.conf", version_base=None):
        return compose("config", overrides=[f"judge={option}", "audit=none"]).judge


def _config_for(name: str) -> str | None:
    """The conf/judge option that configures judge ``name``: its own file, else its family's."""
    for option in (name, JUDGE_FAMILIES.get(name)):
        if option and option in YAMLS:
            return option
    return None


@pytest.mark.parametrize("name", NEEDS_MODEL)
def test_every_model_judge_has_a_config_naming_a_checkpoint(name):
    option = _config_for(name)
    assert option is not None, f"judge {name!r} has no conf/judge/{name}.yaml"
    cfg = _judge_cfg(option)
    model = JudgeFactory(cfg).model_for(name)
    assert model and model != "target", f"conf/judge/{option}.yaml gives judge {name!r} no checkpoint"
    assert cfg.backend in ("hf", "vllm", "openai"), f"conf/judge/{option}.yaml: backend {cfg.backend!r}"
    if cfg.backend == "openai":  # a hosted model: the key comes from the environment, never the file
        assert cfg.api_key_env and cfg.base_url, f"conf/judge/{option}.yaml: openai backend needs base_url, key env"


@pytest.mark.parametrize("option", YAMLS)
def test_every_judge_config_selects_a_registered_judge(option):
    cfg = _judge_cfg(option)
    assert cfg.name == option, f"conf/judge/{option}.yaml sets name={cfg.name!r}"
    assert cfg.name in JUDGE_NAMES or cfg.name in set(JUDGE_FAMILIES.values()), f"{option}: unknown judge"


def test_family_config_reaches_every_member():
    for member, family in JUDGE_FAMILIES.items():
        if family in YAMLS:
            assert JudgeFactory(_judge_cfg(family)).model_for(member), f"judge={family} leaves {member} without a model"
