"""The named synthetic worlds (``synth.world``): each is its class names and the function that builds a scene.

``shapes`` is the original world (classes with their own look, motion and sound: ``classes/``); ``binding``
shares looks across classes, so only what moves and sounds together carries the class (``binding.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from avssl_core.errors import ConfigError
from avssl_core.synth import binding, scene
from avssl_core.synth.classes import CLASS_NAMES


@dataclass(frozen=True)
class World:
    name: str
    class_names: list[str]
    build_scene: Callable  # (cfg, seed, main_class, num_objects=None) -> Scene


WORLDS: dict[str, World] = {
    "shapes": World("shapes", CLASS_NAMES, scene.build_scene),
    "binding": World("binding", binding.CLASS_NAMES, binding.build_binding_scene),
}


def get_world(name: str) -> World:
    if name not in WORLDS:
        raise ConfigError(f"synth.world: unknown world {name!r}; known: {', '.join(WORLDS)}")
    return WORLDS[name]
