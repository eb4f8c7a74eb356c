"""Black-box safety benchmarks: loaders, prompts, judges and metrics per benchmark."""
