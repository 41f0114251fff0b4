"""The negative mix's check and the curriculum's first stage (found by mutation testing:
scripts/mutation.sh curriculum)."""

from __future__ import annotations

import pytest

from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec

pytestmark = pytest.mark.timeout(30)


def test_shares_that_do_not_sum_to_one_are_refused_even_when_none_is_negative():
    with pytest.raises(ValueError, match=r"^negative shares must be >= 0 and sum to 1, got \(0\.5, 0\.4, 0\.0, 0\.0\)$"):
        NegativeMix(easy=0.5, hard=0.4)
    with pytest.raises(ValueError, match="sum to 1"):
        NegativeMix(easy=1.0, hard=1.0)
    NegativeMix(easy=0.75, hard=0.25 + 1e-7)  # rounding within the tolerance is fine


def test_before_the_first_stage_starts_the_first_stage_applies():
    late, later = NegativeMix(easy=0.5, shifted=0.5), NegativeMix(easy=0.75, hard=0.25)
    spec = PairSpec(video_frames=1, audio_seconds=1.0,
                    curriculum=(CurriculumStage(5, later), CurriculumStage(3, late)))
    assert [spec.curriculum_stage_at(e) for e in (0, 2, 3, 4, 5, 9)] == [0, 0, 0, 0, 1, 1]
    assert [spec.mix_at(e) for e in (0, 3, 5)] == [late, late, later]
