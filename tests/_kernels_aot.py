"""Compile every Triton kernel variant for Hopper (sm_90) without a GPU; run by test_kernels_compile.py.

Runs in its own process with TRITON_INTERPRET unset (the interpreter mode is fixed at triton's
import). Catches what the CPU interpreter cannot: type errors, unsupported ops or layouts in the
real compiler. Prints one line per variant; exits non-zero on the first failure.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.pop("TRITON_INTERPRET", None)

import triton  # noqa: E402
from deepsight.kernels import expert_routing, grad_abs, gram, histogram, pool, topk  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
I32 = "i32"


def build(lazy, sig: dict[str, str], consts: dict, **opts) -> None:
    fn = triton.jit(lazy.fn)
    full = {**sig, **{k: "constexpr" for k in consts}}
    full = {name: full[name] for name in fn.arg_names}  # kernel argument order
    t0 = time.time()
    triton.compile(ASTSource(fn, full, consts), target=TARGET, options=opts)
    print(f"ok {lazy.__name__} {consts} {time.time() - t0:.1f}s", flush=True)


def strides(*names: str) -> dict[str, str]:
    return {n: I32 for n in names}


def main() -> int:
    pool_sig = dict(hidden_ptr="*bf16", mask_ptr="*u8", labels_ptr="*i64", sums_ptr="*fp32", counts_ptr="*fp32",
                    sq_ptr="*fp32")
    pool_sig |= strides("stride_h_b", "stride_h_t", "stride_h_d", "stride_m_b", "stride_m_t")
    pool_sig |= strides("T", "D", "K", "T_PER_SPLIT")
    for pooling in (0, 1, 2):
        build(pool._pooled_class_sum_kernel, pool_sig,
              dict(POOLING=pooling, HAS_MASK=True, BLOCK_T=64, BLOCK_D=128, HAS_SQ=False))
    pool_sig64 = pool_sig | dict(hidden_ptr="*fp32", sums_ptr="*fp64", counts_ptr="*i64", sq_ptr="*fp64")
    build(pool._pooled_class_sum_kernel, pool_sig64,
          dict(POOLING=0, HAS_MASK=False, BLOCK_T=32, BLOCK_D=64, HAS_SQ=False))
    sq_sig = pool_sig | dict(sums_ptr="*fp64", counts_ptr="*fp64", sq_ptr="*fp64")  # X-Boundary: bf16 in, fp64 moments
    build(pool._pooled_class_sum_kernel, sq_sig, dict(POOLING=0, HAS_MASK=True, BLOCK_T=64, BLOCK_D=128, HAS_SQ=True))

    gram_sig = dict(x_ptr="*bf16", rows_ptr="*i64", seg_ptr="*i64", tiles_ptr="*i32", out_ptr="*fp32")
    gram_sig |= strides("stride_x_n", "stride_x_d", "stride_out_k", "D", "ROWS_PER_SPLIT")
    for dtype, upcast, precision, bm in (("bf16", False, "ieee", 128), ("fp16", False, "ieee", 64),
                                         ("fp32", True, "ieee", 64), ("fp32", True, "tf32", 128)):  # fmt: skip
        build(
            gram._gram_kernel,
            gram_sig | dict(x_ptr=f"*{dtype}"),
            dict(HAS_ROWS=bm == 64, UPCAST=upcast, INPUT_PRECISION=precision, BLOCK_M=bm, BLOCK_K=64),
            num_warps=4 if bm == 64 else 8,
            num_stages=3,
        )
    build(gram._gram_kernel, gram_sig | dict(out_ptr="*fp64"),
          dict(HAS_ROWS=True, UPCAST=False, INPUT_PRECISION="ieee", BLOCK_M=64, BLOCK_K=64), num_stages=3)  # fmt: skip

    hist_sig = dict(x_ptr="*fp32", y_ptr="*bf16", lo_x_ptr="*fp32", scale_x_ptr="*fp32", lo_y_ptr="*fp32")
    hist_sig |= dict(scale_y_ptr="*fp32", counts_ptr="*i32")
    hist_sig |= strides("stride_x_s", "stride_x_d", "stride_y_s", "stride_y_d", "D", "D_PER_CHUNK")
    for local, exclusive, counts in ((True, True, "*i32"), (True, False, "*fp32"), (False, False, "*i64")):
        build(
            histogram._joint_histogram_kernel,
            hist_sig | dict(counts_ptr=counts),
            dict(BINS=32, NUM_SLOTS=1024, BLOCK_D=4096, LOCAL_HIST=local, EXCLUSIVE=exclusive),
            num_warps=4,
        )

    build(
        histogram._joint_histogram_kernel,
        hist_sig,
        dict(BINS=5, NUM_SLOTS=32, BLOCK_D=128, LOCAL_HIST=True, EXCLUSIVE=True),
        num_warps=8,
    )

    ga_sig = dict(delta_ptr="*bf16", x_ptr="*bf16", mask_ptr="*u8", acc_ptr="*fp32")
    ga_sig |= strides("stride_d_s", "stride_d_t", "stride_d_o", "stride_x_s", "stride_x_t", "stride_x_i")
    ga_sig |= strides("stride_m_s", "stride_m_t", "S", "T", "O", "I", "SAMPLES_PER_SPLIT")
    for dtype, upcast, mask in (("bf16", False, True), ("fp32", True, False)):
        build(
            grad_abs._grad_abs_sum_kernel,
            ga_sig | dict(delta_ptr=f"*{dtype}", x_ptr=f"*{dtype}"),
            dict(HAS_MASK=mask, UPCAST=upcast, INPUT_PRECISION="ieee", BLOCK_O=128, BLOCK_I=128, BLOCK_T=64),
            num_warps=8,
            num_stages=3,
        )

    topk_sig = dict(weight_ptr="*bf16", acc_ptr="*fp32", tau_ptr="*fp32", keys_ptr="*i64", counter_ptr="*i64")
    topk_sig |= dict(numel="i64", capacity="i64")
    build(topk._importance_filter_kernel, topk_sig, dict(BLOCK=4096), num_warps=4)
    build(topk._importance_filter_kernel, topk_sig | dict(weight_ptr="*fp32", numel=I32), dict(BLOCK=4096))

    er_sig = dict(idx_ptr="*i64", w_ptr="*fp32", logits_ptr="*bf16", cls_ptr="*i64", acc_ptr="*fp32")
    er_sig |= strides("stride_idx_n", "stride_idx_k", "stride_w_n", "stride_w_k", "stride_l_n", "stride_l_e", "N", "E",
                      "C")
    for score, k in ((0, 8), (1, 2)):
        build(expert_routing._expert_routing_kernel, er_sig,
              dict(K=k, SCORE=score, HAS_LOGITS=True, BLOCK_N=64, BLOCK_E=128), num_warps=4)
    build(expert_routing._expert_routing_kernel, er_sig | dict(acc_ptr="*fp64", logits_ptr="*fp32"),
          dict(K=1, SCORE=0, HAS_LOGITS=False, BLOCK_N=64, BLOCK_E=16), num_warps=4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
