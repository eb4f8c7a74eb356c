"""X-Boundary and TELLME end to end: DeepSight vs an independent, straightforward implementation of
the spec's slow reference procedure (written here, sharing no code with the package's scans),
same model, same chats, same process.

Reference X-Boundary (spec section 1): chat template text, tokenized without special tokens,
padded to max_length = 1024 (``padding="max_length"``), batches of 16, a full forward with
``output_hidden_states=True`` (every layer, LM head included), masked-mean pooling of the chosen
``hidden_states`` indices, copied to the host every batch, numpy float64 centroids.

Reference TELLME (spec section 2): [user: prompt, assistant: response + suffix], default special
tokens, left padding, batches of 16, a forward hook on block l copying the last position to the
host each batch; rows sorted by label (stable); float32 CPU linear algebra as the reference runs it:
``F.normalize`` columns, three ``slogdet``, a full ``svd`` of the d x d matrix for erank, and
``cdist`` (L2, L1, and L2 again for hausdorff) on the m/2 x m/2 block pairs. Because float32
``slogdet`` limits the reference's own accuracy, the same rows are also evaluated with the
reference formulas in float64 (``ref64``): DeepSight is compared against both.

``bench_xboundary`` / ``bench_tellme`` return one row each for benchmarks/diagnostics.py's table.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from deepsight.models.cpu_fast_paths import cpu_fast_paths


def _rel(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(b), 1e-300)


def _token_counts(tokenizer, chats, special: bool, max_length: int | None) -> str:
    texts = [tokenizer.apply_chat_template(c.messages, tokenize=False) for c in chats]
    n = sum(len(ids) for ids in tokenizer(texts, add_special_tokens=special, truncation=max_length is not None,
                                          max_length=max_length)["input_ids"])
    return f"{n} real tokens vs {len(chats) * max_length} padded" if max_length else f"{n} tokens"


# ------------------------------------------------------------------ X-Boundary reference
@torch.no_grad()
def reference_xboundary(model, tokenizer, chats, layers, max_length: int = 1024, batch_size: int = 16) -> dict:
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [tokenizer.apply_chat_template(c.messages, tokenize=False) for c in chats]
    buffers: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    labels: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], max_length=max_length, padding="max_length", truncation=True,
                        return_tensors="pt", add_special_tokens=False)
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        for layer in layers:
            hs = out.hidden_states[layer]
            pooled = (hs * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            buffers[layer].append(pooled.cpu().numpy())
        labels += [c.label for c in chats[i:i + batch_size]]
    y = np.array(labels)
    per_layer = {}
    for layer in layers:
        emb = np.concatenate(buffers[layer]).astype(np.float64)
        c = [emb[y == k].mean(axis=0) for k in (0, 1, 2)]
        sep = float(np.linalg.norm(c[1] - c[0]))
        bs = float(np.linalg.norm(c[2] - c[1]))
        bh = float(np.linalg.norm(c[2] - c[0]))
        per_layer[layer] = {"separation_score": sep, "boundary_ratio": math.inf if bh < 1e-9 else bs / bh,
                            "dist_bound_safe": bs, "dist_bound_harmful": bh}
    return per_layer


def bench_xboundary(model, tokenizer, anatomy, chats, run_dir, max_batch_tokens: int = 1024, packed=None) -> dict:
    from deepsight.config.schema import HardwareConfig, XBoundaryConfig
    from deepsight.diagnostics.registry import ScanContext
    from deepsight.diagnostics.xboundary import xboundary_from_chats

    ctx = ScanContext(model=model, tokenizer=tokenizer, anatomy=anatomy, run_dir=run_dir, data_dir=None,
                      hardware=HardwareConfig(max_batch_tokens=max_batch_tokens))
    cfg = XBoundaryConfig()  # defaults: layers floor(L/3), floor(2L/3); PCA pictures of both (timed too)
    t0, c0 = time.perf_counter(), time.process_time()
    with cpu_fast_paths(model, packed=packed):  # as the audit runs DeepSight on a CPU (hardware.cpu_fast_paths)
        ours = xboundary_from_chats(ctx, cfg, chats, [])
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    layers = ours["details"]["layers"]
    t0, c0 = time.perf_counter(), time.process_time()
    ref = reference_xboundary(model, tokenizer, chats, layers)
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    diffs = {}
    for layer in layers:
        for k, v in ref[layer].items():
            diffs[f"{k}@{layer}"] = _rel(float(ours["details"]["per_layer"][str(layer)][k]), v)
    return {
        "scan": "xboundary", "n": len(chats), "settings": f"layers {layers}, max_length 1024, PCA figures",
        "deepsight_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
        "cpu_s": (c_ours, c_ref), "tokens": _token_counts(tokenizer, chats, False, 1024),
        "max_rel_diff": max(diffs.values()), "diffs": diffs,
    }  # fmt: skip


# ------------------------------------------------------------------ TELLME reference
@torch.no_grad()
def reference_tellme_rows(model, tokenizer, chats, layer: int, batch_size: int = 16) -> torch.Tensor:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [tokenizer.apply_chat_template(c.messages, tokenize=False, add_generation_prompt=False) for c in chats]
    captured: list[torch.Tensor] = []

    def hook(_m, _i, out):
        hs = out[0] if isinstance(out, tuple) else out
        captured.append(hs[:, -1].detach().cpu())

    handle = model.model.layers[layer].register_forward_hook(hook)
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True, truncation=True)
            model.model(**enc)
    finally:
        handle.remove()
    return torch.cat(captured).float()


def reference_tellme_metrics(z: torch.Tensor, y: torch.Tensor, eps: float = 0.1) -> dict:
    """The reference's formulas on label-sorted rows, in z's dtype."""
    order = torch.sort(y, stable=True).indices
    z, y = z[order], y[order]
    m, d = z.shape
    zn = F.normalize(z, dim=0)
    eye = torch.eye(d, dtype=z.dtype) / d
    r_diff = d * math.log(d) / 2 + float(torch.linalg.slogdet(eye + zn.T @ zn / (m * eps))[1]) / 2
    r_same = 0.0
    classes = y.unique().tolist()
    for k in classes:
        zk = zn[y == k]
        mk = zk.shape[0]
        r_same += (d * math.log(d) + float(torch.linalg.slogdet(eye + zk.T @ zk / (mk * eps))[1])) * mk / (2 * m)
    r = z - z.mean(0)
    r = F.normalize(r / r.norm(dim=1, keepdim=True), dim=1)
    a = r.T @ r / m
    s = torch.linalg.svd(a / torch.trace(a))[1]
    er = math.exp(float(-(s * torch.log(s)).nansum()))
    step = m // len(classes)
    vals = []
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            x, w = z[i * step:(i + 1) * step], z[j * step:(j + 1) * step]
            cos = F.cosine_similarity(x.unsqueeze(0), w.unsqueeze(0), dim=2).mean()
            vx, vw = x - x.mean(), w - w.mean()
            pcc = (F.normalize(vx, p=2, dim=0) * F.normalize(vw, p=2, dim=0)).mean()
            l2 = torch.cdist(x, w, p=2).mean()
            l1 = torch.cdist(x, w, p=1).mean()
            dist = torch.cdist(x, w)
            haus = torch.max(dist.min(1)[0].max(), dist.min(0)[0].max())
            vals.append([float(cos), float(pcc), float(l2), float(l1), float(haus)])
    mean = np.mean(np.array(vals), axis=0)
    return {"R_diff": r_diff, "R_same": r_same, "R_gap": r_diff - r_same, "erank": er,
            "cos_sim": math.degrees(math.acos(float(mean[0]))), "pcc": float(mean[1]), "L2": float(mean[2]),
            "L1": float(mean[3]), "hausdorff": float(mean[4])}


def bench_tellme(model, tokenizer, anatomy, chats, run_dir, max_batch_tokens: int = 1024, packed=None) -> dict:
    from deepsight.config.schema import HardwareConfig, TELLMEConfig
    from deepsight.diagnostics.registry import ScanContext
    from deepsight.diagnostics.tellme import resolve_layer, tellme_from_chats

    ctx = ScanContext(model=model, tokenizer=tokenizer, anatomy=anatomy, run_dir=run_dir, data_dir=None,
                      hardware=HardwareConfig(max_batch_tokens=max_batch_tokens))
    cfg = TELLMEConfig()  # defaults: right padding + last-valid gather, stable sort, float32 Grams
    side = tokenizer.padding_side
    t0, c0 = time.perf_counter(), time.process_time()
    with cpu_fast_paths(model, packed=packed):
        ours = tellme_from_chats(ctx, cfg, chats)
    t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0
    layer = resolve_layer(cfg.layer, anatomy.num_layers)
    y = torch.tensor([c.label for c in chats])
    t0, c0 = time.perf_counter(), time.process_time()
    z = reference_tellme_rows(model, tokenizer, chats, layer)
    ref = reference_tellme_metrics(z, y)
    t_ref, c_ref = time.perf_counter() - t0, time.process_time() - c0
    tokenizer.padding_side = side
    ref64 = reference_tellme_metrics(z.double(), y)
    diffs = {k: _rel(float(ours["metrics"][k]), v) for k, v in ref.items()}
    diffs64 = {k: _rel(float(ours["metrics"][k]), v) for k, v in ref64.items()}
    return {
        "scan": "tellme", "n": len(chats), "settings": f"block {layer}, eps 0.1, right padding vs reference left",
        "deepsight_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours, "cpu_s": (c_ours, c_ref),
        "max_rel_diff": max(diffs.values()), "diffs": diffs,
        "max_rel_diff_ref64": max(diffs64.values()), "diffs_ref64": diffs64,
    }  # fmt: skip


def load_inputs(data_dir, n_per_class: int, n_tellme_per_class: int):
    """X-Boundary chats (seeded sample per class) and a balanced TELLME subset (first rows of each class)."""
    from deepsight.config.schema import TELLMEConfig
    from deepsight.data.tellme import load_tellme
    from deepsight.data.xboundary import load_xboundary

    xb_dir = data_dir / "xboundary"
    xb, _ = load_xboundary(xb_dir / "harmbench_test.json", xb_dir / "SafeMT_train_600.json",
                           xb_dir / "ORbench_retain_set.json", n_per_class=n_per_class, seed=42)
    tm_all = load_tellme(data_dir / "tellme" / "test.csv", suffix=TELLMEConfig().suffix)
    tm = [c for k in (0, 1) for c in [c for c in tm_all if c.label == k][:n_tellme_per_class]]
    tm.sort(key=lambda c: c.row)
    return SimpleNamespace(xboundary=xb, tellme=tm)
