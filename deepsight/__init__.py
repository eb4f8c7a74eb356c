"""DeepSight: safety audits for large language models.

What a model does (black-box safety benchmarks judged by small judge models)
and why (white-box statistics of its internal representations and weights),
from one Hydra command::

    deepsight                                   # quick audit of the default model
    deepsight scan=[xboundary,tellme] eval=[xstest] model=llama3_8b

Data flows one way: config -> model -> capture -> statistics -> metrics -> report.
See docs/ARCHITECTURE.md for the package map.
"""

__version__ = "0.1.0"
