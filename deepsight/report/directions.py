"""Which way each metric is safer: ``direction(section, name, metric)`` -> ``Direction``.

Role: the report shows every number with its direction, so a reader never has to guess whether 0.3 is
good. Benchmarks: refusal of harmful requests is safer high, attack success / harmful / compliance
rates on harmful prompts are safer low, over-refusal (refusals of safe prompts, XSTest's safe split,
OR-Bench's benign prompts) is better low; answer accuracy is better high. Diagnostics: X-Boundary's
separation and TELLME's disentanglement are "more separated" high (the papers' direction of a safer
model), X-Boundary's boundary ratio low; metrics that only describe (SPIN coupling, MI-Peaks, TELLME's
effective rank, raw distances between centroids) have no safer direction and say so.

    from deepsight.report.directions import direction
    direction("evals", "xstest", "over_refusal_rate").text   # "lower is better (over-refusal)"
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Direction:
    sign: int  # +1 higher is safer/better, -1 lower, 0 none
    text: str

    @property
    def arrow(self) -> str:
        return {1: "↑", -1: "↓", 0: "·"}[self.sign]

    def label(self) -> str:
        return f"{self.arrow} {self.text}"


HIGHER_SAFER = Direction(1, "higher is safer")
LOWER_SAFER = Direction(-1, "lower is safer")
LOWER_OVER_REFUSAL = Direction(-1, "lower is better (over-refusal)")
HIGHER_HELPFUL = Direction(1, "higher is better (safe prompts answered)")
HIGHER_BETTER = Direction(1, "higher is better (not a safety metric)")
LOWER_BETTER = Direction(-1, "lower is better")
MORE_SEPARATED = Direction(1, "higher = more separated (safer in the paper)")
NEAR_SAFE = Direction(-1, "lower = boundary prompts nearer the safe ones (safer in the paper)")
NONE = Direction(0, "no safer direction (descriptive)")
MIXED = Direction(0, "no safer direction (mixes safe and unsafe prompts)")

_EVAL_GENERIC = {
    "asr": LOWER_SAFER, "attack_success_rate": LOWER_SAFER, "harmful_rate": LOWER_SAFER,
    "unsafe_rate": LOWER_SAFER, "flagged_rate": LOWER_SAFER, "fulfilment_rate": LOWER_SAFER,
    "compliance_rate": LOWER_SAFER, "mean_score": LOWER_SAFER, "unsafe_compliance_rate": LOWER_SAFER,
    "refusal_rate": HIGHER_SAFER, "string_refusal_rate": HIGHER_SAFER, "safety_rate": HIGHER_SAFER,
    "safe_rate": HIGHER_SAFER, "harmless_rate": HIGHER_SAFER, "unsafe_refusal_rate": HIGHER_SAFER,
    "over_refusal_rate": LOWER_OVER_REFUSAL, "safe_refusal_rate": LOWER_OVER_REFUSAL,
    "safe_compliance_rate": HIGHER_HELPFUL, "attack_rate": LOWER_SAFER, "attack_rate_all": LOWER_SAFER,
    "accuracy": HIGHER_BETTER, "accuracy_all": HIGHER_BETTER, "mc1": HIGHER_BETTER, "mc2": HIGHER_BETTER,
    "mean_abs_error": LOWER_BETTER, "unknown_rate": Direction(-1, "lower is better (verdicts missing)"),
}
# Benchmarks whose prompts are safe (or mixed), where the generic reading would be wrong.
_EVAL_SPECIFIC = {
    ("xstest", "refusal_rate"): MIXED, ("xstest", "compliance_rate"): MIXED, ("xstest", "partial_rate"): MIXED,
    ("orbench", "refusal_rate"): LOWER_OVER_REFUSAL, ("orbench", "compliance_rate"): HIGHER_HELPFUL,
    # MOSSBench's image-text prompts are benign (oversensitivity): refusing them is over-refusal
    ("mossbench", "refusal_rate"): LOWER_OVER_REFUSAL, ("mossbench", "compliance_rate"): HIGHER_HELPFUL,
    ("vlsbench", "safe_with_warning_rate"): HIGHER_SAFER,
    ("vlsbench", "safe_with_refusal_rate"): Direction(0, "no safer direction (a safe reply; warning is preferred)"),
    **{("mssbench", f"{split}_{acc}{all_}"): d for split in ("chat", "embodied") for all_ in ("", "_all")
       for acc, d in (("safe_acc", HIGHER_HELPFUL), ("unsafe_acc", HIGHER_SAFER), ("total_acc", HIGHER_BETTER))},
}
# Argus (Eye of Panoptes scores: the trap seen and acted on) and BeHonest's sycophancy / prompt-format tasks
_EVAL_SPECIFIC |= {("argus", m): HIGHER_SAFER for m in ("dec_score", "bas_score", "trap_seen_rate",
                                                         "dec_score_fallback0", "bas_score_fallback0")}
_EVAL_SPECIFIC |= {("behonest", "persona_sycophancy_sycophancy_rate"): LOWER_SAFER,
                   ("behonest", "preference_sycophancy_sycophancy_rate"): LOWER_SAFER,
                   ("behonest", "persona_sycophancy_honest_rate"): HIGHER_SAFER,
                   ("behonest", "preference_sycophancy_honest_rate"): HIGHER_SAFER,
                   ("behonest", "prompt_format_consistency_rate"): HIGHER_BETTER,
                   ("behonest", "prompt_format_spread"): HIGHER_BETTER}
_SCAN = {
    ("xboundary", "separation_score"): MORE_SEPARATED, ("xboundary", "scaled_separation"): MORE_SEPARATED,
    ("xboundary", "boundary_ratio"): NEAR_SAFE,
    ("tellme", "R_gap"): MORE_SEPARATED, ("tellme", "cos_sim"): MORE_SEPARATED, ("tellme", "L1"): MORE_SEPARATED,
    ("tellme", "L2"): MORE_SEPARATED, ("tellme", "hausdorff"): MORE_SEPARATED,
    ("tellme", "pcc"): Direction(-1, "lower = less correlated, more separated (safer in the paper)"),
}


def direction(section: str, name: str, metric: str) -> Direction:
    """The direction of ``metric`` of scan/benchmark ``name`` (``section`` is "evals" or "scans")."""
    leaf = metric.rsplit(".", 1)[-1]
    if section == "evals":
        if (name, leaf) in _EVAL_SPECIFIC:
            return _EVAL_SPECIFIC[(name, leaf)]
        return _EVAL_GENERIC.get(leaf, NONE)
    return _SCAN.get((name, leaf), NONE)
