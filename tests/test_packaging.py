"""Packaging: the repository's ``kernels/`` folder never passes for the PyPI ``kernels`` package.

The Triton kernels live in ``kernels/`` and install as ``deepsight.kernels``. A PyPI
distribution called ``kernels`` exists and transformers probes for it
(``is_kernels_available``); run from the repository root, where ``''`` on ``sys.path``
makes our folder findable as a top-level ``kernels``, transformers must still see no
usable ``kernels`` package and build, save, load and run models as usual. Each check
runs in a fresh interpreter so the working directory decides what is importable.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_FROM_REPO_ROOT = r"""
import json, sys, torch, transformers
from transformers.utils.import_utils import is_kernels_available

assert not is_kernels_available(), "transformers takes the repository's kernels/ folder for the PyPI kernels package"
cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               intermediate_size=48, vocab_size=61, max_position_embeddings=32)
torch.manual_seed(0)
model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
ids = torch.randint(0, 61, (2, 5))
with torch.no_grad():
    logits = model(ids).logits
model.save_pretrained(sys.argv[1])
loaded = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    again = loaded(ids).logits
with torch.no_grad():
    generated = loaded.generate(ids, max_new_tokens=3, do_sample=False)
# DeepSight's own loader and anatomy on the same folder (a word-level tokenizer saved beside the weights).
from tokenizers import Tokenizer, models, pre_tokenizers
vocab = {"<unk>": 0, "</s>": 1} | {f"w{i}": i for i in range(2, 61)}
words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
fast = transformers.PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>", eos_token="</s>")
fast.save_pretrained(sys.argv[1])
from deepsight.config.schema import ModelConfig
from deepsight.models.anatomy import inspect_model
from deepsight.models.loading import load_model
ours = load_model(ModelConfig(name="tiny", path=sys.argv[1], device="cpu", dtype="float32"))
with torch.no_grad():
    ours_logits = ours.model(ids).logits
anatomy = inspect_model(ours.model)
top = sys.modules.get("kernels")
print(json.dumps({
    "ours_same": bool(torch.allclose(ours_logits, logits, rtol=1e-5, atol=1e-6)), "ours_layers": anatomy.num_layers,
    "ours_tokens": ours.tokenizer("w3 w7 w11", add_special_tokens=False).input_ids,
    "shape": list(logits.shape), "generated": list(generated.shape),
    "same": bool(torch.allclose(logits, again, rtol=1e-5, atol=1e-6)),
    "finite": bool(torch.isfinite(logits).all()),
    # If a probe imported our folder as top-level "kernels", it must be the empty, versionless package.
    "top_kernels_file": getattr(top, "__file__", None), "top_kernels_version": getattr(top, "__version__", None),
    "top_kernels_public": sorted(n for n in dir(top) if not n.startswith("_")) if top is not None else [],
}))
"""


def _python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the working directory alone decides what is importable
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_transformers_unaffected_from_repo_root(tmp_path):
    assert (REPO / "kernels" / "__init__.py").is_file()
    out = _python(_FROM_REPO_ROOT, REPO, str(tmp_path / "tiny"))
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2, 5, 61] and report["finite"] and report["same"]
    assert report["generated"] == [2, 8]
    assert report["ours_same"] and report["ours_layers"] == 2 and report["ours_tokens"] == [3, 7, 11]
    assert report["top_kernels_version"] is None and report["top_kernels_public"] == []


def test_kernels_folder_has_no_top_level_exports():
    """The folder's __init__ must stay import-free: it is what a probe from the repo root finds."""
    tree = ast.parse((REPO / "kernels" / "__init__.py").read_text(encoding="utf-8"))
    statements = [
        node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    assert statements == [], "kernels/__init__.py must hold only its docstring"


def test_deepsight_kernels_importable_elsewhere(tmp_path):
    code = (
        "import importlib, importlib.util, json, pkgutil, sys, deepsight.kernels as k; "
        "ops = [m.name for m in pkgutil.iter_modules(k.__path__)]; "
        "[importlib.import_module('deepsight.kernels.' + n) for n in ops]; "
        "spec = importlib.util.find_spec('kernels'); "
        "print(json.dumps({'file': k.__file__, 'top': spec.origin if spec else None, 'ops': ops, "
        "'top_imported': 'kernels' in sys.modules}))"
    )
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).name == "__init__.py"
    # Every kernel module imports as deepsight.kernels.<op>, none through a top-level "kernels".
    assert "utils" in report["ops"] and not report["top_imported"]
    assert Path(report["file"]).parent.name == "kernels"  # editable: repo/kernels; wheel: deepsight/kernels
    # Outside the repository a top-level "kernels" is either absent or a real install, never our folder.
    if report["top"] is not None:
        assert Path(report["top"]).resolve() != (REPO / "kernels" / "__init__.py").resolve()


def test_console_script_help_lists_config_groups():
    exe = shutil.which("deepsight")
    if exe is None:
        pytest.skip("the deepsight console script is not installed (pip install -e .)")
    out = subprocess.run([exe, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    section = out.stdout.split("== Configuration groups ==", 1)
    assert len(section) == 2, out.stdout[:2000]
    listed = dict(re.findall(r"^(\w+): (.*)$", section[1].split("== Config ==", 1)[0], flags=re.M))
    conf = REPO / "conf"
    groups = {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in conf.iterdir() if d.is_dir()}
    for group, options in groups.items():
        if not options:
            continue  # Hydra lists only groups that have options
        assert group in listed, f"group {group} missing from --help"
        assert sorted(o.strip() for o in listed[group].split(",")) == options
