"""DeepSight's Triton kernels, imported as ``deepsight.kernels`` (setup.py maps this folder).

Never import this folder as a top-level ``kernels`` module: a PyPI distribution of
that name exists and transformers probes for it. This file deliberately imports
nothing, so a probe that finds the folder from the repository root gets an empty,
versionless package that transformers rejects (tests/test_packaging.py checks this).
Each op lives in its own module with its torch reference beside it.
"""
