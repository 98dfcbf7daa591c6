"""Errors a user can act on; each message names the key, file or value at fault.

The command lines print them as one line (`error: ...`) and exit with code 2.
"""


class ConfigError(ValueError):
  """A config value is invalid or inconsistent with the data."""


class DataError(ValueError):
  """A dataset file or array is missing, malformed or unusable."""


class WorkdirError(ValueError):
  """A workdir is missing, unwritable, damaged, or holds another experiment."""


class WriteError(WorkdirError, OSError):
  """A file could not be written (a full disk, a read-only folder): the message names the
  file and the OS reason, and the file's previous version is intact. Also an OSError, so
  code that treats a write as optional (a cache, a crash log) keeps catching it as one."""

  def __init__(self, message: str, path: str = '', reason: str = ''):
    super().__init__(message)
    self.path, self.reason = path, reason


class CheckpointError(WorkdirError):
  """No checkpoint could be restored, or one could not be written."""


class NonFiniteLossError(FloatingPointError):
  """Training produced NaN/inf; raised with the step, member and term at fault."""


class TrainingFailed(RuntimeError):
  """An unexpected error stopped training; the last good state was saved where that was
  safe. The message is one line naming the failure, the checkpoint and the log holding
  the full traceback (the command lines exit with code 1)."""


class Preempted(RuntimeError):
  """Training stopped on SIGTERM/SIGINT after saving a checkpoint; rerun to resume."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum


USER_ERRORS = (ConfigError, DataError, WorkdirError, NonFiniteLossError)
