"""User-facing errors: one line that names the problem and how to fix it."""


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
        super().__init__(f"{len(problems)} problem(s) with this run, nothing was started:\n"
                         + "\n".join(f"  - {problem}" for problem in problems))
