"""Shared helpers of the Triton kernels (block sizes, contiguity)."""
