"""Paths a run writes or reads back stay inside its folder.

- ``safe_name(text)``: one path component of ``[A-Za-z0-9._-]``, no ``..``, no leading dot
  (``model.name=../../x`` -> ``x``), so a run folder can never climb out of the output
  directory; registered as the OmegaConf resolver ``${safe_name:...}`` that the run folder
  patterns in conf/config.yaml use;
- ``inside(root, rel)``: ``root / rel`` resolved, or None when it is absolute or leaves ``root``
  (symlinks included), for figure and generation paths read from results.json.

    from deepsight.util.paths import inside, safe_name
    safe_name("../../x")                        # "x"
    inside(run_dir, "figures/a.png")            # run_dir/figures/a.png
    inside(run_dir, "/etc/passwd")              # None
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: object, default: str = "model") -> str:
    """``text`` as a single safe path component: no separators, no leading dots, at most 100 characters."""
    name = _UNSAFE.sub("_", str(text)).strip("._-")  # "../../x" -> "x"; "a/b" -> "a_b"
    name = re.sub(r"\.{2,}", ".", name)[:MAX_NAME].rstrip("._-")  # no ".." anywhere
    return name or default


def inside(root: str | Path, rel: str | Path) -> Path | None:
    """``root / rel`` when that path (resolved, symlinks followed) lies inside ``root``; None otherwise."""
    rel = Path(rel)
    if rel.is_absolute():
        return None
    root = Path(root).resolve()
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path != root else None


def register_resolver() -> None:
    """Register ``${safe_name:...}`` with OmegaConf (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("safe_name"):
        OmegaConf.register_new_resolver("safe_name", safe_name)
