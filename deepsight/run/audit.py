"""Run one audit: load the model, run benchmarks and scans, write results and the report.

Phases (each timed in results.json):
1. black-box: build the generator (hf shares the model with the scans; vllm/openai
   run outside this process's model), run every benchmark, close the generator;
2. white-box: load the HF model if not loaded yet, inspect its anatomy, run every scan;
3. report: report.md, report.html, the logger (W&B) and a console summary.
A failing scan or benchmark is recorded with its error and the others still run;
a missing data file skips (or, with on_missing_data=error, fails) with a message naming it.

The run's status (and the CLI's exit code) is ``completed`` (0) only when every requested
stage completed; it is ``completed_with_errors`` (1) when a stage failed, when a benchmark's
unknown rate exceeds ``fail_unknown_rate``, or when a scan or benchmark asked for by name
(``scan=[...]``/``eval=[...]`` on the command line, or anything selected under ``audit=none``)
was skipped for missing data. The parts a preset (quick/standard/full) adds on its own are
optional: they may skip when their data is missing.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from deepsight.errors import ConfigError, MissingDataError
from deepsight.run.outputs import RunRecorder
from deepsight.util.atomic import atomic_write_text
from deepsight.util.scrub import install_log_scrubber, scrub_secrets, scrub_text

log = logging.getLogger("deepsight")


def selected_scans(cfg: DictConfig) -> list[str]:
    return [name for name, node in cfg.scan.items() if node is not None]


def selected_evals(cfg: DictConfig) -> list[str]:
    return list(cfg.eval.keys())


def explicit_parts(cfg: DictConfig, overrides: list[str] | None = None) -> set[str]:
    """``scan/<name>`` and ``eval/<name>`` the user asked for by name (their skip is an error).

    Under ``audit=none`` (or no preset) everything selected was asked for; under a preset only
    the scans and benchmarks named by a ``scan=``/``eval=`` override (``overrides``: Hydra's
    task overrides, as on the command line).
    """
    if cfg.get("audit_name") in ("none", "custom"):
        return {f"scan/{n}" for n in selected_scans(cfg)} | {f"eval/{n}" for n in selected_evals(cfg)}
    if not overrides:
        return set()
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out: set[str] = set()
    for ov in OverridesParser.create().parse_overrides(list(overrides)):
        group = ov.key_or_group.split("@")[0]
        if group not in ("scan", "eval") or ov.is_delete():
            continue
        value = ov.value()
        names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        out |= {f"{group}/{n}" for n in names if isinstance(n, str)}
    return out


def run_problems(results: dict[str, Any], explicit: set[str], fail_unknown_rate: float) -> list[str]:
    """Why a finished run is not a clean success (empty when it is): failed stages, unknown rates, skips."""
    problems = []
    for section, label in (("evals", "eval"), ("scans", "scan")):
        for name, res in results[section].items():
            status = res.get("status")
            if status == "failed":
                problems.append(f"{label} {name} failed: {res.get('reason')}")
            elif status == "skipped" and f"{label}/{name}" in explicit:
                problems.append(f"{label} {name} was requested but skipped: {res.get('reason')}")
            unknown = res.get("unknown") if status == "ok" else None
            if isinstance(unknown, dict) and isinstance(unknown.get("rate"), (int, float)):
                if unknown["rate"] > fail_unknown_rate:
                    problems.append(f"eval {name}: unknown rate {unknown['rate']:.3f} ({unknown.get('count')}/"
                                    f"{unknown.get('n')}) exceeds fail_unknown_rate={fail_unknown_rate}")
    return problems


def resolve_data_dir(cfg: DictConfig) -> Path | None:
    if cfg.data_dir is None:
        return None
    d = Path(str(cfg.data_dir)).expanduser().resolve()
    if not d.is_dir():
        raise ConfigError(f"data_dir={cfg.data_dir!r} is not a directory")
    return d


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _run_one(recorder: RunRecorder, section: str, name: str, on_missing_data: str, fn, *args) -> None:
    """Run one scan/benchmark, recording ok / skipped / failed with the reason."""
    label = "scan" if section == "scans" else "eval"
    nonfinite: dict[str, dict[str, int]] = {}
    with recorder.stage(f"{label}/{name}"):
        try:
            with _nonfinite_counts(section) as nonfinite:
                result = fn(*args)
            result.setdefault("status", "ok")
        except MissingDataError as e:
            if on_missing_data == "error":
                raise
            log.warning("%s %s skipped: %s", label, name, e)
            result = {"status": "skipped", "reason": str(e)}
        except Exception as e:  # recorded, the run goes on with the next stage
            log.error("%s %s failed: %s", label, name, e)
            err_file = recorder.run_dir / "errors" / f"{label}_{name}.txt"
            err_file.parent.mkdir(parents=True, exist_ok=True)
            err_file.write_text(scrub_text(traceback.format_exc()), encoding="utf-8")
            result = {
                "status": "failed",
                "reason": f"{type(e).__name__}: {e}",
                "traceback_file": str(err_file.relative_to(recorder.run_dir)),
            }
    if nonfinite:  # rows left out of the statistics (capture/finite.py): in the results and the warnings
        from deepsight.capture.finite import summary

        result["nonfinite_rows"] = nonfinite
        recorder.warn(f"{label} {name}: non-finite activations or gradients, rows excluded: {summary(nonfinite)}")
    recorder.record(section, name, result)


@contextlib.contextmanager
def _nonfinite_counts(section: str):
    """Non-finite rows the capture engine drops during a scan (nothing for benchmarks)."""
    if section != "scans":
        yield {}
        return
    from deepsight.capture import finite

    with finite.collect() as counts:
        yield counts


def run_audit(cfg: DictConfig, run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the audit ``cfg`` into ``run_dir``; ``overrides`` (the command line's) say what was asked for by name."""
    from deepsight.logging import build_logger
    from deepsight.models.anatomy import inspect_model
    from deepsight.models.loading import load_model, target_is_image_text
    from deepsight.report import print_summary, write_report

    install_log_scrubber()  # idempotent; the CLI installs it before Hydra logs anything
    run_dir = Path(run_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    recorder = RunRecorder(run_dir, config)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(scrub_secrets(config))))
    logger = build_logger(cfg.logger, config, run_dir)
    data_dir = resolve_data_dir(cfg)
    scans, evals = selected_scans(cfg), selected_evals(cfg)
    fail_unknown_rate = float(cfg.get("fail_unknown_rate", 0.5))
    if not 0.0 <= fail_unknown_rate <= 1.0:
        raise ConfigError(f"fail_unknown_rate={fail_unknown_rate} must be in [0, 1]")
    explicit = explicit_parts(cfg, overrides)
    if cfg.hardware.num_threads:
        import torch

        torch.set_num_threads(cfg.hardware.num_threads)
    from deepsight.kernels.dispatch import set_default_backend

    set_default_backend(cfg.hardware.kernel_backend)  # what backend="auto" means in every statistic

    loaded = None
    status = "completed"
    cpu_speedups = contextlib.ExitStack()

    def speed_up_on_cpu(model) -> None:
        from deepsight.models.cpu_fast_paths import cpu_fast_paths

        on = cpu_speedups.enter_context(cpu_fast_paths(model, enabled=cfg.hardware.cpu_fast_paths))
        log.info("CPU fast paths: %d linear layers pre-packed, native grouped-query attention %s, malloc keeps "
                 "freed memory: %s", on["packed_linears"], "on" if on["native_gqa"] else "off",
                 "yes" if on["malloc_keeps_freed"] else "no")

    try:
        if evals:
            from deepsight.evals.registry import EvalContext, get_benchmark, is_image_text_benchmark
            from deepsight.generation.factory import build_generator
            from deepsight.judges.factory import JudgeFactory

            if cfg.generation.backend == "hf":
                with recorder.stage("model_load"):
                    loaded = load_model(cfg.model)
                    speed_up_on_cpu(loaded.model)
                recorder.set_model(loaded.info)
            with recorder.stage("generator_setup"):
                generator = build_generator(cfg.generation, cfg.model, loaded)
            judges = JudgeFactory(cfg.judge, data_dir=data_dir, target=loaded)
            ctx = EvalContext(
                generator=generator,
                judge_factory=judges,
                run_dir=run_dir,
                data_dir=data_dir,
                generation=cfg.generation,
                model_name=cfg.model.name,
                model=loaded.model if loaded else None,
                tokenizer=loaded.tokenizer if loaded else None,
            )
            try:
                image_text = target_is_image_text(cfg.model, loaded)
                for name in evals:
                    if not image_text and is_image_text_benchmark(name):
                        reason = (f"image-text benchmark; the model {cfg.model.name!r} is text-only "
                                  "(set model.image_text=true if it takes images)")
                        log.warning("eval %s skipped: %s", name, reason)
                        recorder.record("evals", name, {"status": "skipped", "reason": reason})
                        continue
                    _run_one(recorder, "evals", name, cfg.on_missing_data, get_benchmark(name), ctx, cfg.eval[name])
            finally:
                generator.close()
                judges.close()
                del generator, judges, ctx
                if cfg.hardware.free_between_phases:
                    _free_memory()

        if scans:
            from deepsight.diagnostics.registry import ScanContext, get_scan

            if loaded is None:
                with recorder.stage("model_load"):
                    loaded = load_model(cfg.model)
                    speed_up_on_cpu(loaded.model)
                recorder.set_model(loaded.info)
            anatomy = inspect_model(loaded.model)
            ctx = ScanContext(
                model=loaded.model,
                tokenizer=loaded.tokenizer,
                anatomy=anatomy,
                run_dir=run_dir,
                data_dir=data_dir,
                hardware=cfg.hardware,
                seed=cfg.seed,
                extras={"config": cfg, "loaded": loaded},  # scans that generate (experts ablation) reuse them
            )
            for name in scans:
                _run_one(recorder, "scans", name, cfg.on_missing_data, get_scan(name), ctx, cfg.scan[name])
        if not scans and not evals:
            recorder.warn("nothing selected: pass scan=[...] and/or eval=[...], or an audit preset")
        problems = run_problems(recorder.results, explicit, fail_unknown_rate)
        for problem in problems:
            log.error("%s", problem)
            recorder.warn(problem)
        if problems:
            status = "completed_with_errors"
    except BaseException:
        recorder.finish("failed")
        raise
    finally:
        cpu_speedups.close()
        if recorder.results["status"] == "running":
            recorder.finish(status)
        with recorder.stage("report"):
            write_report(run_dir, recorder.results)
        logger.log_results(recorder.results, run_dir)
        logger.finish()
    print_summary(recorder.results, run_dir)
    return recorder.results
