"""Joint 2-D histograms on CUDA at memory speed: a CUDA kernel with shared-memory atomics, via CuPy.

Same op and bins as :mod:`.histogram` (MI-Peaks' streaming estimator): row s adds one count per
coordinate k to ``counts[s, a, b]`` with ``a = clamp(floor((x[s, k] - lo_x[s]) * scale_x[s]), 0,
BINS - 1)`` (b likewise for y), computed in fp32 exactly as the torch reference does. Triton has no
shared-memory atomics, so its kernel reduces each block with ``tl.histogram`` in registers (~0.08 of
the copy bandwidth on an H200); here each CUDA block keeps its row's BINS x BINS histogram in shared
memory, every thread adds its coordinates with ``atomicAdd`` there (cheap, and spread over 1024 cells
for 32 bins), and the block adds the histogram into ``counts`` once: a plain read-add-write when it
owns the whole row, global atomics on the non-zero cells when rows are split across blocks (few rows).

CuPy is optional (extras "gpu"): ``available()`` is False without it (or without CUDA), and the
dispatch then takes the Triton kernel. The source is compiled by NVRTC on first use, one variant per
(input dtype, count dtype); ``cuda_source`` gives it to nvcc for a compile check where no GPU exists.
"""

from __future__ import annotations

import functools

import torch

INPUT_TYPES = {torch.float32: "float", torch.float16: "unsigned short", torch.bfloat16: "unsigned short"}
LOADS = {torch.float32: "load_f32", torch.float16: "load_f16", torch.bfloat16: "load_bf16"}
COUNT_TYPES = {torch.int32: "int", torch.int64: "long long", torch.float32: "float", torch.float64: "double"}
# Launch: threads per block, blocks aimed at per SM (rows are split into chunks when S is smaller).
CUDA_LAUNCH = {"threads": 512, "blocks_per_sm": 4}
MAX_SHARED_BYTES = 48 * 1024  # static launch limit without opt-in: BINS <= 110 with 4-byte cells

_SOURCE = r"""
typedef IN_T in_t;
typedef COUNT_T count_t;

__device__ __forceinline__ float load_f32(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load_bf16(const unsigned short* p) {
    return __uint_as_float(((unsigned int)__ldg(p)) << 16);
}
__device__ __forceinline__ float load_f16(const unsigned short* p) {
    unsigned short h = __ldg(p);
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ void add_count(int* p, unsigned int c) { atomicAdd(p, (int)c); }
__device__ __forceinline__ void add_count(long long* p, unsigned int c) {
    atomicAdd((unsigned long long*)p, (unsigned long long)c);
}
__device__ __forceinline__ void add_count(float* p, unsigned int c) { atomicAdd(p, (float)c); }
__device__ __forceinline__ void add_count(double* p, unsigned int c) { atomicAdd(p, (double)c); }

__device__ __forceinline__ int bin_of(float v, float lo, float scale, float top) {
    return (int)fminf(fmaxf(floorf((v - lo) * scale), 0.0f), top);
}

// Block (s, chunk): counts[s, bin(x[s, k]), bin(y[s, k])] += 1 for k in the chunk.
extern "C" __global__ void joint_histogram_smem(
    const in_t* __restrict__ x, const in_t* __restrict__ y,
    const float* __restrict__ lo_x, const float* __restrict__ scale_x,
    const float* __restrict__ lo_y, const float* __restrict__ scale_y,
    count_t* __restrict__ counts,
    long long stride_x_s, long long stride_x_d, long long stride_y_s, long long stride_y_d,
    long long D, long long d_per_chunk, int bins, int exclusive)
{
    extern __shared__ unsigned int hist[];
    const int cells = bins * bins;
    for (int i = threadIdx.x; i < cells; i += blockDim.x) hist[i] = 0u;
    __syncthreads();

    const long long s = blockIdx.x;
    const float lx = lo_x[s], sx = scale_x[s], ly = lo_y[s], sy = scale_y[s];
    const float top = (float)(bins - 1);
    const in_t* xr = x + s * stride_x_s;
    const in_t* yr = y + s * stride_y_s;
    const long long d_lo = (long long)blockIdx.y * d_per_chunk;
    const long long d_hi = min(d_lo + d_per_chunk, D);
    if (stride_x_d == 1 && stride_y_d == 1) {  // the common contiguous case: coalesced, no stride multiply
        for (long long d = d_lo + threadIdx.x; d < d_hi; d += blockDim.x) {
            const int a = bin_of(LOAD(xr + d), lx, sx, top);
            const int b = bin_of(LOAD(yr + d), ly, sy, top);
            atomicAdd(&hist[a * bins + b], 1u);
        }
    } else {
        for (long long d = d_lo + threadIdx.x; d < d_hi; d += blockDim.x) {
            const int a = bin_of(LOAD(xr + d * stride_x_d), lx, sx, top);
            const int b = bin_of(LOAD(yr + d * stride_y_d), ly, sy, top);
            atomicAdd(&hist[a * bins + b], 1u);
        }
    }
    __syncthreads();

    count_t* row = counts + s * (long long)cells;
    for (int i = threadIdx.x; i < cells; i += blockDim.x) {
        const unsigned int c = hist[i];
        if (exclusive) {
            row[i] += (count_t)c;  // this block owns the row: no other writer
        } else if (c) {
            add_count(row + i, c);
        }
    }
}
"""


def cuda_source(input_dtype: torch.dtype = torch.float32, count_dtype: torch.dtype = torch.float32) -> str:
    """The kernel's CUDA source for one (input dtype, count dtype) variant."""
    defs = (f"#define IN_T {INPUT_TYPES[input_dtype]}\n#define COUNT_T {COUNT_TYPES[count_dtype]}\n"
            f"#define LOAD {LOADS[input_dtype]}\n")
    return defs + _SOURCE


@functools.lru_cache(maxsize=1)
def _cupy():
    try:
        import cupy
    except Exception:  # noqa: BLE001 - ImportError, or a CuPy build that does not match the CUDA driver
        return None
    return cupy


def available() -> bool:
    """CuPy imports and CUDA is present (the kernel can run)."""
    return torch.cuda.is_available() and _cupy() is not None


def supports(x: torch.Tensor, y: torch.Tensor, counts: torch.Tensor) -> bool:
    """This kernel takes these tensors: CUDA, a supported dtype, and a histogram that fits shared memory."""
    bins = counts.shape[-1]
    return (x.is_cuda and y.is_cuda and counts.is_cuda and x.dtype in INPUT_TYPES and y.dtype == x.dtype
            and counts.dtype in COUNT_TYPES and 4 * bins * bins <= MAX_SHARED_BYTES)


@functools.cache
def _kernel(input_dtype: torch.dtype, count_dtype: torch.dtype):
    cupy = _cupy()
    return cupy.RawKernel(cuda_source(input_dtype, count_dtype), "joint_histogram_smem",
                          options=("--std=c++14",))


def joint_histogram_cuda(x, y, counts, lo_x, hi_x, lo_y, hi_y) -> None:
    """CUDA (CuPy) path of :func:`deepsight.kernels.dispatch.joint_histogram_`; same arguments."""
    from .histogram import prepare

    ready = prepare(x, y, counts, lo_x, hi_x, lo_y, hi_y)
    if ready is None:
        return
    bins, y2, lx, sx, ly, sy = ready
    S, D = x.shape
    if not supports(x, y2, counts):
        raise ValueError("joint_histogram_cuda: needs CUDA tensors, x and y of one dtype among "
                         f"{[str(t) for t in INPUT_TYPES]}, and bins^2 * 4 bytes <= {MAX_SHARED_BYTES}")
    cupy = _cupy()
    if cupy is None:
        raise RuntimeError("joint_histogram_cuda needs cupy (pip install 'deepsight[gpu]')")
    threads = CUDA_LAUNCH["threads"]
    target = CUDA_LAUNCH["blocks_per_sm"] * torch.cuda.get_device_properties(x.device).multi_processor_count
    # split rows into chunks only when there are too few rows to fill the GPU; each chunk >= 8 items per thread
    n_chunks = 1 if S >= target else max(1, min(-(-target // S), -(-D // (8 * threads))))
    d_per_chunk = -(-D // n_chunks)
    n_chunks = -(-D // d_per_chunk)
    kernel = _kernel(x.dtype, counts.dtype)
    args = tuple(cupy.uint64(t.data_ptr()) for t in (x, y2, lx, sx, ly, sy, counts)) + tuple(
        cupy.int64(v) for v in (x.stride(0), x.stride(1), y2.stride(0), y2.stride(1), D, d_per_chunk)) + (
        cupy.int32(bins), cupy.int32(1 if n_chunks == 1 else 0))
    with cupy.cuda.Device(x.device.index), cupy.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream):
        kernel((S, n_chunks), (threads,), args, shared_mem=4 * bins * bins)
