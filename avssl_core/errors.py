"""Errors a user can act on. The CLI prints their message without a traceback."""


class AvsslError(Exception):
    """Base class: the message names the file or parameter at fault and the reason."""


class ConfigError(AvsslError):
    """A parameter in params.yaml or an override is unknown or malformed."""


class DataError(AvsslError):
    """Input data cannot be used (too few valid files, unreadable manifest, ...)."""
