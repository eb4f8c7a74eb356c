"""White-box diagnostics (X-Boundary, TELLME, SPIN, MI-Peaks) built on the capture engine.

Each diagnostic module registers a function ``run(ctx, cfg) -> dict`` under its
scan name with :func:`deepsight.diagnostics.registry.register_scan`.
"""
