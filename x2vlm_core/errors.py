"""User-facing errors: one line that names the problem and how to fix it."""

import reprlib
from typing import Any

_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxlong, _REPR.maxother = 3, 80, 40, 80
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 6


def shown(value: Any, limit: int = 160) -> str:
    """``repr(value)`` for a message, cut short without ever building the whole of it: a few lines
    of YAML with aliases (billion laughs) parse cheaply into a value whose full repr is gigabytes."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class X2VLMError(Exception):
    """Base class for errors caused by the user's input (config, files, data)."""


class ConfigError(X2VLMError):
    """A config file or option is wrong: unknown key, bad type, bad value."""


class DataError(X2VLMError):
    """An input file or sample is missing, unreadable or malformed."""


class CheckpointError(X2VLMError):
    """A checkpoint cannot be read safely or does not fit the model."""


class StorageError(X2VLMError):
    """A local path or gs:// location cannot be read or written."""


class ReleaseError(X2VLMError):
    """A published release is incomplete, corrupt, or would overwrite an existing version."""


class RunCheckError(ConfigError):
    """Every problem the up-front run check found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) with this run, nothing was started:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
