"""Build judges by name, cached for the run: ``JudgeFactory(judge_cfg, data_dir, target)(name)``.

- ``refusal``: string match, no model.
- ``flames_scorer``: the Flames classifier, loaded in-process on first use (flames_scorer.py).
- LLM judges (``harmbench``, ``llamaguard``, ``llamaguard4``, ``strongreject``, ``proguard``, ``proguard_image``,
  ``md_judge``, ``yes_no``, ``fulfilment``, ``xstest_3way``, ``fake_alignment``, ``deception``, ``mask``,
  ``behonest``, ``policy_score``, ``reasoning_monitor``, ``persuasion_voter``): the backend is built on first use with
  ``deepsight.generation.factory.build_generator`` from a GenerationConfig/ModelConfig made
  of the JudgeConfig (model, backend, base_url, api_key_env, batch_size, dtype). The judge
  config's ``model`` belongs to the judge it names (``judge=harmbench`` selects
  conf/judge/harmbench.yaml with the official classifier); ``judge.model=target`` reuses the
  target model already loaded in-process. A judge without a model is still built: each of
  its verdicts is ``unknown`` with the reason (``judge_unavailable: ...``), so the benchmark
  reports it instead of failing or guessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepsight.errors import ConfigError
from deepsight.judges.argus import ArgusPresenceJudge, ArgusScorerJudge
from deepsight.judges.behonest import BeHonestJudge
from deepsight.judges.deception import DeceptionJudge
from deepsight.judges.fake_alignment import FakeAlignmentJudge
from deepsight.judges.flames_scorer import FlamesScorerJudge, load_flames_scorer
from deepsight.judges.harmbench_cls import HarmBenchJudge
from deepsight.judges.llamaguard import LlamaGuard4Judge, LlamaGuardJudge
from deepsight.judges.llm import LLMJudge
from deepsight.judges.mask import MaskJudge
from deepsight.judges.md_judge import MDJudge
from deepsight.judges.mm_safetybench import MMSafetyBenchJudge
from deepsight.judges.mossbench import MOSSBenchJudge
from deepsight.judges.mssbench import MSSBenchJudge
from deepsight.judges.persuasion_voter import PersuasionVoterJudge
from deepsight.judges.policy_score import PolicyScoreJudge
from deepsight.judges.proguard import ProGuardImageJudge, ProGuardJudge
from deepsight.judges.reasoning_monitor import ReasoningMonitorJudge
from deepsight.judges.refusal import RefusalJudge
from deepsight.judges.siuo import SIUOEffectivenessJudge, SIUOSafetyJudge
from deepsight.judges.strongreject import StrongRejectJudge
from deepsight.judges.vlsbench import VLSBenchJudge
from deepsight.judges.xstest_3way import XSTest3WayJudge
from deepsight.judges.yes_no import FulfilmentJudge, YesNoJudge

LLM_JUDGES: dict[str, type[LLMJudge]] = {
    "harmbench": HarmBenchJudge,
    "llamaguard": LlamaGuardJudge,
    "llamaguard4": LlamaGuard4Judge,
    "strongreject": StrongRejectJudge,
    "proguard": ProGuardJudge,
    "proguard_image": ProGuardImageJudge,
    "md_judge": MDJudge,
    "yes_no": YesNoJudge,
    "fulfilment": FulfilmentJudge,
    "xstest_3way": XSTest3WayJudge,
    "fake_alignment": FakeAlignmentJudge,
    "deception": DeceptionJudge,
    "mask": MaskJudge,
    "behonest": BeHonestJudge,
    "policy_score": PolicyScoreJudge,
    "reasoning_monitor": ReasoningMonitorJudge,
    "persuasion_voter": PersuasionVoterJudge,
    "mossbench": MOSSBenchJudge,
    "siuo_safety": SIUOSafetyJudge,
    "siuo_effectiveness": SIUOEffectivenessJudge,
    "argus_presence": ArgusPresenceJudge,
    "argus_scorer": ArgusScorerJudge,
    "mm_safetybench": MMSafetyBenchJudge,
    "vlsbench": VLSBenchJudge,
    "mssbench": MSSBenchJudge,
}
# judges that reason before the verdict: use judge.max_new_tokens
LONG_OUTPUT = {"strongreject", "proguard", "mask", "policy_score", "reasoning_monitor", "mossbench", "siuo_safety",
               "siuo_effectiveness", "proguard_image", "mssbench"}
JUDGE_NAMES = ("refusal", "flames_scorer", *LLM_JUDGES)
# judges a benchmark runs together on one model: judge.name=<family> judge.model=... configures each of them
JUDGE_FAMILIES = {"siuo_safety": "siuo", "siuo_effectiveness": "siuo", "proguard_image": "proguard",
                  "argus_presence": "argus", "argus_scorer": "argus"}


def _field(cfg: Any, key: str, default: Any = None) -> Any:
    return getattr(cfg, key, default) if cfg is not None else default


def token_clipper(tokenizer):
    """``clip(text, n)`` keeping the first ``n`` tokens of ``text`` under ``tokenizer``."""

    def clip(text: str, n: int) -> str:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= n else tokenizer.decode(ids[:n], skip_special_tokens=True)

    return clip


class JudgeFactory:
    """Callable: judge name -> cached Judge. ``close()`` frees the judges' backends and models."""

    def __init__(self, judge_cfg: Any, data_dir: str | Path | None = None, target: Any = None):
        self.cfg = judge_cfg
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.target = target  # the target's LoadedModel when in-process (for judge.model=target)
        self._judges: dict[str, Any] = {}
        self._loaded: list[Any] = []

    def model_for(self, name: str) -> str | None:
        selected = _field(self.cfg, "name")
        return _field(self.cfg, "model") if selected in (name, JUDGE_FAMILIES.get(name)) else None

    def __call__(self, name: str):
        if name not in self._judges:
            self._judges[name] = self._build(name)
        return self._judges[name]

    def _build(self, name: str):
        if name == "refusal":
            return RefusalJudge()
        if name == "flames_scorer":  # a classifier, not a generator: loaded in-process
            return FlamesScorerJudge(lambda: self._flames_scorer(), model=self.model_for(name) or "",
                                     batch_size=int(_field(self.cfg, "batch_size", 16)))
        if name not in LLM_JUDGES:
            raise ConfigError(f"judge={name!r} is not a known judge; known: {list(JUDGE_NAMES)}")
        cls = LLM_JUDGES[name]
        model = self.model_for(name)
        kw: dict[str, Any] = {"model": model or "", "batch_size": int(_field(self.cfg, "batch_size", 16))}
        if name in LONG_OUTPUT:
            kw["max_new_tokens"] = int(_field(self.cfg, "max_new_tokens", 512))
        judge = cls(lambda: self._backend(name, model, judge), **kw)
        return judge

    def _flames_scorer(self):
        model = self.model_for("flames_scorer")
        if not model:
            raise ConfigError("judge 'flames_scorer' has no model: select it with judge=flames_scorer")
        return load_flames_scorer(model)

    def _backend(self, name: str, model: str | None, judge: LLMJudge):
        from deepsight.config.schema import GenerationConfig, ModelConfig

        if not model:
            raise ConfigError(
                f"judge {name!r} has no model: select it with judge={name} (conf/judge/{name}.yaml) "
                f"or set judge.name={name} judge.model=<path or hub id>"
            )
        from deepsight.generation.factory import build_generator

        backend = _field(self.cfg, "backend", "hf")
        gen_cfg = GenerationConfig(
            backend=backend,
            max_new_tokens=judge.params.max_new_tokens,
            temperature=0.0,
            batch_size=int(_field(self.cfg, "batch_size", 16)),
            base_url=_field(self.cfg, "base_url"),
            api_key_env=_field(self.cfg, "api_key_env"),
            served_model=None if model == "target" else model,
        )
        if model == "target":
            if self.target is None:
                raise ConfigError("judge.model=target needs the target model loaded in-process (generation.backend=hf)")
            loaded, model_cfg = self.target, ModelConfig(name="target")
        else:
            model_cfg = ModelConfig(name=f"judge-{name}", path=model, dtype=_field(self.cfg, "dtype", "auto"))
            loaded = None
            if backend == "hf":
                from deepsight.models.loading import load_model

                loaded = load_model(model_cfg)
                self._loaded.append(loaded)
        if loaded is not None and isinstance(judge, HarmBenchJudge):
            judge.clip = token_clipper(loaded.tokenizer)
        return build_generator(gen_cfg, model_cfg, loaded)

    def close(self) -> None:
        for judge in self._judges.values():
            judge.close()
        self._judges.clear()
        self._loaded.clear()
