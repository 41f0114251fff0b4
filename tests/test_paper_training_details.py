"""Pretraining details from the papers that change results (issue 17): AVTS's plateau schedule across
its curriculum switch, epochs as passes over the training clips, CMAC's colour jitter and 1 s window,
stereo channels swapped with horizontal flips."""

from __future__ import annotations

import pytest

from avssl_core.methods.avts import AVTS

pytestmark = pytest.mark.timeout(120)


def test_avts_restarts_the_plateau_tracking_at_its_curriculum_switch():
    assert AVTS("paper").optim_spec().plateau_restart_epochs == (50,)
    assert AVTS("tiny").optim_spec().plateau_restart_epochs == (8,)
    assert AVTS("tiny", hard_from_epoch=None).optim_spec().plateau_restart_epochs == ()
    assert AVTS("tiny", finetune_ce_from_epoch=10).optim_spec().plateau_restart_epochs == (8, 10)
