"""Weights & Biases logger: config, metrics, figures and sample tables of one run.

One W&B run per model run; runs of one Hydra multirun share a group (the sweep
folder's date and time) unless ``logger.group`` names one. ``logger.mode=auto`` is
online only if WANDB_API_KEY is set or a netrc login for the W&B host exists,
otherwise offline (files under ``<run_dir>/wandb`` or $WANDB_DIR; upload later with
``wandb sync <dir>``); WANDB_MODE, when set, decides in auto mode. An online start
that fails falls back to offline. The config is scrubbed of secrets
(deepsight.util.scrub) and no environment value is ever copied into it.

Logged: ``config`` (+ model info, versions, hardware), one step of metrics
(``eval/<bench>/<metric>``, intervals, unknown rates, ``scan/<scan>/<metric>``,
``time/<stage>``) also in the run summary, each scan figure as an image
(``figures/<scan>/<name>``), and tables: ``examples/<bench>`` (worst examples with
verdicts), ``generations/<bench>`` (the first generations with every judge's verdict)
and ``stages`` (skipped and failed stages with reasons).
"""

from __future__ import annotations

import contextlib
import json
import logging
import netrc
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from deepsight.util.paths import inside
from deepsight.util.scrub import scrub_results, scrub_secrets, scrub_text

log = logging.getLogger("deepsight")

MAX_TABLE_ROWS = 500  # generations logged per benchmark
MAX_CELL = 4000  # characters of one table cell


def _netrc_login(host: str) -> bool:
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """``auto`` -> WANDB_MODE if set, online with credentials (API key or netrc login), else offline."""
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
    if env_mode in ("online", "offline", "disabled"):
        return env_mode
    if env_mode == "dryrun":
        return "offline"
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    return "online" if _netrc_login(host) else "offline"


def _sweep_group() -> tuple[str | None, str | None]:
    """(group, job number) when running inside a Hydra multirun, else (None, None)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return None, None
        hc = HydraConfig.get()
        parts = Path(str(hc.sweep.dir)).parts
        return "_".join(parts[-2:]), str(hc.job.num)
    except Exception:  # no Hydra context (tests, library use)
        return None, None


@contextlib.contextmanager
def _scrubbed_argv():
    """W&B records the command line (sys.argv) in the run's metadata: show it the scrubbed one."""
    saved = sys.argv[:]
    sys.argv[:] = [scrub_text(a) for a in saved]
    try:
        yield
    finally:
        sys.argv[:] = saved


def _cell(value: Any) -> str | float | int | bool | None:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    s = scrub_text(value if isinstance(value, str) else json.dumps(value, default=str))
    return s if len(s) <= MAX_CELL else s[: MAX_CELL - 1] + "…"


def _table(wandb, rows: list[dict[str, Any]]):
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    # one type per column: strings unless every present value is numeric
    numeric = {c for c in columns
               if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows if c in r)}
    data = [[(_cell(r.get(c)) if c in numeric else (None if c not in r else str(_cell(r[c]))))
             for c in columns] for r in rows]
    return wandb.Table(columns=columns, data=data)


def _read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a half-written last line of an interrupted run
            rows.append(obj if isinstance(obj, dict) else {"value": obj})
    return rows


def _prompt_text(messages: Any) -> str:
    """The last user message of a chat (the prompt the model answered)."""
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                content = m.get("content")
                return content if isinstance(content, str) else json.dumps(content, default=str)
    return "" if messages is None else str(messages)


def generation_rows(records: list[dict[str, Any]], limit: int = MAX_TABLE_ROWS) -> list[dict[str, Any]]:
    """Rows of a generations file (the resume store: ``kind`` generation / verdict records) as one row per
    item: id, prompt, response, finish reason, tokens and each judge's verdict (label, or unknown with its
    reason). Files without ``kind`` records are returned as they are."""
    if not any(r.get("kind") in ("generation", "verdict") for r in records):
        return records[:limit]
    gens: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, str]] = {}
    for r in records:  # later records of an id (a rerun with other settings) replace earlier ones
        item = str(r.get("id"))
        if r.get("kind") == "generation":
            gens[item] = r
        elif r.get("kind") == "verdict" and isinstance(r.get("verdict"), dict):
            v = r["verdict"]
            label = str(v.get("label"))
            if label == "unknown" and v.get("reason"):
                label = f"unknown: {v['reason']}"
            verdicts.setdefault(item, {})[f"verdict/{r.get('judge')}"] = label
    rows = []
    for item, g in list(gens.items())[:limit]:
        rows.append({"id": item, "prompt": _prompt_text(g.get("messages")), "response": g.get("text"),
                     "finish_reason": g.get("finish_reason"), "completion_tokens": g.get("completion_tokens"),
                     **verdicts.get(item, {})})
    return rows


class WandbLogger:
    """Starts the W&B run at construction (config logged up front); ``log_results`` then ``finish``."""

    def __init__(self, cfg: Any, config: dict[str, Any], run_dir: str | Path):
        import wandb

        self.wandb = wandb
        self.run_dir = Path(run_dir)
        self.mode = resolve_mode(cfg.mode)
        sweep_group, job_num = _sweep_group()
        model = (config.get("model") or {}).get("name") or "model"
        kwargs = dict(
            project=cfg.project,
            entity=cfg.entity,
            group=scrub_text(cfg.group or sweep_group or "") or None,
            name=scrub_text(f"{job_num}_{model}" if job_num is not None else str(model)),
            job_type=scrub_text(str(config.get("audit_name") or "audit")),
            tags=[scrub_text(str(t)) for t in (cfg.tags or [])],
            config=scrub_secrets(config),
            settings=wandb.Settings(silent=True, console="off"),
            reinit="finish_previous",
        )
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(self.run_dir)
        try:
            with _scrubbed_argv():
                self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as e:  # network or auth trouble: keep the run, log offline
            if self.mode != "online":
                raise
            log.warning("W&B online start failed (%s); logging offline, sync later with `wandb sync`", e)
            self.mode = "offline"
            with _scrubbed_argv():
                self.run = wandb.init(mode="offline", **kwargs)

    def log_results(self, results: dict[str, Any], run_dir: str | Path) -> None:
        try:
            self._log_results(results, Path(run_dir))
        except Exception:  # results.json and the report are already on disk
            log.exception("W&B logging failed; the run's results are in %s", run_dir)

    def _log_results(self, results: dict[str, Any], run_dir: Path) -> None:
        from deepsight.report.metrics import as_list, flat_metrics, ok_sections, stage_problems
        from deepsight.util.jsonable import to_jsonable

        wandb = self.wandb
        results = scrub_results(to_jsonable(results))
        self.run.config.update(scrub_secrets({"model_info": results.get("model") or {},
                                              "versions": results.get("versions") or {},
                                              "hardware": results.get("hardware") or {}}), allow_val_change=True)
        data: dict[str, Any] = dict(flat_metrics(results))
        for stage, seconds in (results.get("timings") or {}).items():
            if isinstance(seconds, (int, float)):
                data[f"time/{stage}"] = seconds
        self.run.summary.update({**data, "status": results.get("status", "unknown")})
        for scan, res in ok_sections(results, "scans").items():
            for rel in as_list(res.get("figures")):
                file = inside(run_dir, rel)
                if file is not None and file.is_file():
                    data[f"figures/{scan}/{file.stem}"] = wandb.Image(str(file), caption=file.stem)
        for bench, res in ok_sections(results, "evals").items():
            examples = [e for e in res.get("examples") or [] if isinstance(e, dict)]
            if examples:
                data[f"examples/{bench}"] = _table(wandb, examples)
            gen = inside(run_dir, res["generations_file"]) if res.get("generations_file") else None
            if gen is not None and gen.is_file():
                rows = generation_rows(_read_jsonl(gen))
                if rows:
                    data[f"generations/{bench}"] = _table(wandb, rows)
        problems = stage_problems(results)
        if problems:
            data["stages"] = _table(wandb, [{"stage": f"{p.kind}/{p.name}", "status": p.status, "reason": p.reason}
                                            for p in problems])
        self.run.log(data)

    def finish(self) -> None:
        where = Path(self.run.dir).parent  # <dir>/wandb/offline-run-<time>-<id>/files -> the offline run
        self.run.finish()
        # finish() returns before the offline transaction log is on disk; teardown waits for the
        # W&B service to flush and stop (the next run of a multirun starts a fresh one).
        self.wandb.teardown()
        if self.mode == "offline":
            log.info("W&B run logged offline; upload with `wandb sync %s`", where)
