"""The one error type for bad user input.

Every check of a config value, path, dataset name or mesh raises `ConfigError`
naming the field and what is allowed; the CLI prints its message and exits 2.
"""


class ConfigError(ValueError):
  """Bad user input. `field` is the dotted config name (or CLI argument)."""

  def __init__(self, field: str, message: str):
    self.field = field
    super().__init__(f"{field}: {message}")
