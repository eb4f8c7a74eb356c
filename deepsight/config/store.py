"""Register the schemas in Hydra's ConfigStore so YAML in conf/ is validated against them."""

from hydra.core.config_store import ConfigStore

from deepsight.config.schema import DeepSightConfig
from deepsight.util.paths import register_resolver


def register_configs() -> None:
    register_resolver()  # ${safe_name:...} in the run folder patterns
    ConfigStore.instance().store(name="deepsight_schema", node=DeepSightConfig)
