"""Typed configuration: dataclass schemas registered in Hydra's ConfigStore."""

from deepsight.config.schema import (  # noqa: F401
    BenchmarkConfig,
    DeepSightConfig,
    GenerationConfig,
    HardwareConfig,
    JudgeConfig,
    LoggerConfig,
    MIPeaksConfig,
    ModelConfig,
    ScansConfig,
    SPINConfig,
    TELLMEConfig,
    XBoundaryConfig,
)
from deepsight.config.store import register_configs  # noqa: F401
