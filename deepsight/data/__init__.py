"""Dataset loaders that read the benchmarks' native public formats."""
