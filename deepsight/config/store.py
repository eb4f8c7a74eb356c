"""Register the schemas in Hydra's ConfigStore so YAML in conf/ is validated against them."""

from hydra.core.config_store import ConfigStore

from deepsight.config.schema import DeepSightConfig


def register_configs() -> None:
    ConfigStore.instance().store(name="deepsight_schema", node=DeepSightConfig)
