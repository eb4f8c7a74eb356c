"""OR-Bench (Cui et al., 2024, arXiv 2405.20947): over-refusal on seemingly toxic but benign prompts.

Native formats: the OR-Bench CSVs / HF ``bench-llm/or-bench`` configs (prompt, category;
``or-bench-80k``, ``or-bench-hard-1k``, ``or-bench-toxic``), X-Boundary's JSON
(``{"data": [{"behavior", "messages"}]}``) and retain set (prompt_id, prompt, ...).
Without ``path``, ``subsets`` picks the local files of ``options.local_subsets``
(test_300: X-Boundary's 300 hard prompts; retain_set: 542 prompts). Judge: refusal string
match (default) or an LLM judge. Metric: refusal rate (over-refusal on benign subsets,
desired refusal on or-bench-toxic), per category and subset.
"""

from __future__ import annotations

from deepsight.errors import ConfigError
from deepsight.evals.common import run_harm_rates
from deepsight.evals.loaders import EvalItem, content_id, read_path, records, text_field
from deepsight.evals.registry import register_benchmark

NAME = "orbench"
LOCAL_SUBSETS = {"test_300": "xboundary/ORbench_test_300.json", "retain_set": "xboundary/ORbench_retain_set.json"}


def _rows(ctx, cfg) -> list[dict]:
    if cfg.hf_dataset or cfg.path:
        return records(ctx, cfg, NAME, None, hf_subsets=["or-bench-hard-1k"])
    local = dict(cfg.options.get("local_subsets") or LOCAL_SUBSETS)
    names = list(cfg.subsets or ["test_300"])
    unknown = [s for s in names if s not in local]
    if unknown:
        raise ConfigError(f"eval.{NAME}.subsets: unknown {unknown}; known: {sorted(local)}")
    return [{**r, "_file": s} for s in names for r in read_path(ctx.data_path(local[s], f"eval.{NAME}.subsets"))]


@register_benchmark(NAME)
def run(ctx, cfg) -> dict:
    items = []
    for i, r in enumerate(_rows(ctx, cfg)):
        if "messages" in r:
            prompt = next(m["content"] for m in r["messages"] if m.get("role") == "user")
        else:
            prompt = text_field(r, "prompt", f"eval.{NAME} ({r.get('_file')})", i)
        rid = r.get("prompt_id")
        subset = r.get("_file", "")
        items.append(
            EvalItem(
                f"{subset}:{rid}" if rid not in (None, "") else content_id(subset, prompt),
                prompt,
                {"category": r.get("category") or r.get("behavior") or "", "subset": subset},
            )
        )
    return run_harm_rates(ctx, cfg, NAME, items, "refusal", yes="compliance_rate", no="refusal_rate",
                          fields=["category", "subset"])
