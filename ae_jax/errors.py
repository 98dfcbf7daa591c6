"""Errors a user can act on; each message names the key, file or value at fault."""


class ConfigError(ValueError):
  """A config value is invalid or inconsistent with the data."""


class DataError(ValueError):
  """A dataset file or array is missing, malformed or unusable."""


class NonFiniteLossError(FloatingPointError):
  """Training produced NaN/inf; raised with the step, member and term at fault."""
