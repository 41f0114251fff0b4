"""Checks a flow runs on its parameters before any stage: every error names the parameter at fault."""

from __future__ import annotations

from pathlib import Path

from avssl_core.config import DEFAULT_PARAMS, Config, load_config
from avssl_core.errors import ConfigError


def method_names() -> list[str]:
    from avssl_core.methods.registry import METHODS

    return sorted(METHODS)


def check_method(value: str, parameter: str = "method") -> str:
    names = method_names()
    if value not in names:
        raise ConfigError(f"parameter {parameter}: unknown method {value!r}; choose one of {', '.join(names)}")
    return value


def check_methods(values: list[str] | None, parameter: str = "methods") -> list[str]:
    if values is not None and not values:
        raise ConfigError(f"parameter {parameter}: empty list; name at least one method")
    return [check_method(v, parameter) for v in values or []]


def flow_config(params_file: str, overrides: list[str] | None) -> tuple[Config, Config]:
    """(the configuration with ``overrides``, the one params.yaml alone gives); errors name the parameter."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides or []):
        raise ConfigError(f"parameter overrides: expected a list of 'section.key=value' strings, got {overrides!r}")
    path = Path(params_file)
    if Path(params_file) != DEFAULT_PARAMS and not path.is_file():
        raise ConfigError(f"parameter params_file: {path.resolve()} not found")
    try:
        from_file = load_config(params_file)
    except ConfigError as exc:
        raise ConfigError(f"parameter params_file ({params_file}): {exc}") from exc
    try:
        effective = load_config(params_file, overrides)
    except ConfigError as exc:
        raise ConfigError(f"parameter overrides: {exc}") from exc
    return effective, from_file
