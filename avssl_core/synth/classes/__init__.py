"""The sounding-object classes of the synthetic world, in label-index order.

``CLASS_NAMES[i]`` is the label of index ``i``; the order is part of the metadata contract (``classes``), so
new classes are appended, never inserted.
"""

from __future__ import annotations

from avssl_core.synth.classes.base import ObjectClass, ObjectPlan, Region
from avssl_core.synth.classes.bouncing_ball import BouncingBall
from avssl_core.synth.classes.breather import Breather
from avssl_core.synth.classes.drum import Drum
from avssl_core.synth.classes.flash_lamp import FlashLamp
from avssl_core.synth.classes.mouth import Mouth
from avssl_core.synth.classes.pendulum import Pendulum
from avssl_core.synth.classes.pitch_glider import PitchGlider
from avssl_core.synth.classes.spinner import Spinner

CLASSES: list[ObjectClass] = [
    BouncingBall(),
    PitchGlider(),
    Spinner(),
    FlashLamp(),
    Mouth(),
    Breather(),
    Pendulum(),
    Drum(),
]
CLASS_NAMES: list[str] = [c.name for c in CLASSES]
CLASS_BY_NAME: dict[str, ObjectClass] = {c.name: c for c in CLASSES}

__all__ = ["CLASSES", "CLASS_BY_NAME", "CLASS_NAMES", "ObjectClass", "ObjectPlan", "Region"]
