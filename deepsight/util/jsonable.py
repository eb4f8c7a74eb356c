"""Conversion of result values (tensors, numpy values, paths, non-finite floats) to plain JSON values.

    from deepsight.util.jsonable import to_jsonable
    json.dumps(to_jsonable(results), allow_nan=False)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy values, paths and non-finite floats into plain JSON values.

    Non-finite floats become the strings "nan", "inf", "-inf" so results.json stays
    valid JSON (the spec's boundary_ratio can be +inf).
    """
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # torch tensors, numpy arrays and scalars
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    return str(obj)
