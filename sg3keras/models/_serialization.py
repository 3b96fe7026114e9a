"""``get_config`` / ``from_config`` of the models built from one config dataclass."""

__all__ = ["ConfigSerialization"]


class ConfigSerialization:
    """Mixin for a Keras model (or layer) whose ``__init__`` takes ``config`` (a dataclass with
    ``to_dict``, or its dict) plus the keyword arguments named in ``_config_attrs``; the
    instance stores each of them as a same-named attribute. Chains ``super().get_config()``."""

    _config_attrs = ()

    def get_config(self):
        config = super().get_config()
        config.update(config=self.config.to_dict(),
                      **{name: getattr(self, name) for name in self._config_attrs})
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
