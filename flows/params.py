"""Parameter types shared by the flows. Literal types become enums in the deployments' parameter schema,
so the Prefect server refuses an unknown method or mode when a run is created, before any work."""

from __future__ import annotations

from typing import Literal

from avssl_core.methods.registry import METHODS

# Built from the registry, so a method added there is accepted everywhere without editing this file.
MethodName = Literal.__getitem__(tuple(sorted(METHODS)))  # type: ignore[misc]
