"""Errors a user can act on. The CLI prints their message without a traceback."""


class AvsslError(Exception):
    """Base class: the message names the file or parameter at fault and the reason."""


class ConfigError(AvsslError):
    """A parameter in params.yaml or an override is unknown or malformed."""


class DataError(AvsslError):
    """Input data cannot be used (too few valid files, unreadable manifest, ...)."""


class FileError(Exception):
    """One file cannot give what was asked of it; ``path`` and ``reason`` say which and why.

    Not an ``AvsslError``: it fails one sample or one file where it happens (a failed sample, a quarantined
    video), and the caller decides whether the run goes on.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)  # both in args, so the error pickles across processes
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"
