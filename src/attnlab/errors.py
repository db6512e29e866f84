"""The errors every command turns into one line on stderr and exit status 2.

    AttnlabError          a bad input the user can fix; its message is one line naming the file,
     |                    field or argument at fault and what was wrong
     +-- ConfigError      a config value, key, name or YAML file
     |    +-- RunError    a run folder that is missing, foreign, incomplete, corrupt or in use
 |    +-- DivergenceError  training went non-finite (loss, gradients or weights) at these settings
     +-- DataError        a data file that is missing or malformed
          +-- CheckpointError  pretrained weights that are missing, corrupt or do not fit

They subclass ValueError, so a caller that already catches ValueError keeps working. Anything
else that escapes a command is a defect in attnlab, and keeps its traceback.
"""

from __future__ import annotations


class AttnlabError(ValueError):
    """A bad input; the message is one line."""


class ConfigError(AttnlabError):
    """A config value, key, name or file that cannot be used; the message is one line."""


class RunError(ConfigError):
    """A run folder that is missing, foreign, incomplete or corrupt; the message is one line."""


class DivergenceError(ConfigError):
    """Training went non-finite; the message names the step and what (loss, gradients or weights)."""


class DataError(AttnlabError):
    """A data file is missing or malformed; the message names the file (and line) and the fault."""


class CheckpointError(DataError):
    """Pretrained weights that are missing, corrupt, or whose keys or shapes do not fit the model."""
