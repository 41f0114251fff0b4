"""The pair sampler (pretext/sampling.py) on synthetic clip indexes whose answers are known exactly.

Nothing is decoded: a ClipIndex is a table of numbers, so every placement rule can be checked against
the window arithmetic done by hand (times in tenths of a second, audio at 100 samples per second). Each
test fails on a one-token change to the sampler: a bound off by one, a gap or an overlap compared the
wrong way, audio taken from the wrong clip or video, a seed that ignores the epoch (found by mutation
testing: scripts/mutation.sh sampling). test_pretext.py runs the sampler on real clips as well.
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from avssl_core.errors import DataError
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.sampling import PAIR_SEED_TAG, PairRecipe, PairSampler, _draw_kind
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairKind, PairSpec

pytestmark = pytest.mark.timeout(60)

EASY, HARD, SUPERHARD, SHIFTED = PairKind.EASY, PairKind.HARD, PairKind.SUPERHARD, PairKind.SHIFTED


def clip(video: str, start_s: float = 0.0, **columns) -> dict:
    """One clip: by default 3 s at 10 fps (30 frames) with 3 s of mono audio at 100 Hz (300 samples)."""
    return {"video": video, "start_s": start_s, "fps": 10.0, "num_frames": 30, "sample_rate": 100,
            "num_samples": 300, "audio_channels": 1, **columns}


def make_index(clips: list[dict]) -> ClipIndex:
    """A ClipIndex laid out as ClipIndex.from_csv leaves it: rows of one video together, in the given order."""
    videos = list(dict.fromkeys(c["video"] for c in clips))
    group = np.array([videos.index(c["video"]) for c in clips], dtype=np.int64)
    assert (np.diff(group) >= 0).all(), "keep the clips of a video together"
    column = lambda key, dtype: np.array([c[key] for c in clips], dtype=dtype)  # noqa: E731
    start_s = column("start_s", np.float64)
    return ClipIndex(
        source="synthetic.csv", clip_id=np.array([f"{c['video']}@{c['start_s']:g}" for c in clips]),
        video_id=column("video", str), label=np.array(["x"] * len(clips)), split=np.array(["train"] * len(clips)),
        video_path=np.array(["/nowhere.mp4"] * len(clips)), audio_path=np.array(["/nowhere.wav"] * len(clips)),
        start_s=start_s, end_s=start_s + 3.0, fps=column("fps", np.float64),
        num_frames=column("num_frames", np.int64), width=np.full(len(clips), 64), height=np.full(len(clips), 64),
        sample_rate=column("sample_rate", np.int64), audio_channels=column("audio_channels", np.int64),
        num_samples=column("num_samples", np.int64), video_group=group,
        group_begin=np.concatenate([[0], np.cumsum(np.bincount(group))]).astype(np.int64))


# Three videos of one 3 s clip each, and three of two clips each (0-3 s and 3-6 s of the video).
ONE_CLIP = [clip("a"), clip("b"), clip("c")]
TWO_CLIPS = [clip(v, s) for v in "abc" for s in (0.0, 3.0)]


def spec_with(mix: NegativeMix | None = None, **fields) -> PairSpec:
    """Video window 5 frames = 0.5 s at 10 fps, audio window 0.5 s = 50 samples, negatives only."""
    fields = {"video_frames": 5, "audio_seconds": 0.5, "positive_fraction": 0.0, **fields}
    return PairSpec(curriculum=(CurriculumStage(0, mix or NegativeMix()),), **fields)


def draw(sampler: PairSampler, n: int, epoch: int = 0) -> list[PairRecipe]:
    return [sampler.recipe(epoch, i) for i in range(n)]


def placements(recipes: list[PairRecipe]) -> set[tuple[int, int, int]]:
    """(video start frame, audio row, audio start sample) of each recipe."""
    return {(r.video_start_frame, r.audio_row, r.audio_start_sample) for r in recipes}


# -- the spec, the seed, and which clips can be used ----------------------------------------------------

def test_every_spec_problem_is_named_in_one_error():
    spec = PairSpec(video_frames=0, audio_seconds=0, video_fps=0, positive_fraction=1.5, hard_negative_gap_s=-0.1,
                    superhard_overlap=1.0, shift_range_s=(0.0, 1.0), audio_channels=3, audio_sample_rate=0)
    with pytest.raises(ValueError) as error:
        PairSampler(make_index(ONE_CLIP), spec, seed=0)
    assert str(error.value) == (
        "PairSpec: video_frames=0 (need >= 1); audio_seconds=0 (need > 0); video_fps=0 (need > 0 or None); "
        "positive_fraction=1.5 (need 0..1); hard_negative_gap_s=-0.1 (need >= 0); "
        "superhard_overlap=1.0 (need strictly between 0 and 1); shift_range_s=(0.0, 1.0) (need 0 < low <= high); "
        "audio_channels=3 (need 1 or 2); audio_sample_rate=0 (need > 0 or None)")


# field -> values just inside its bound (accepted), values just outside (refused)
SPEC_BOUNDS = {
    "video_frames": ([1], [0]),
    "audio_seconds": ([0.01], [0.0]),
    "video_fps": ([None, 10.0], [0.0, -1.0]),
    "positive_fraction": ([0.0, 1.0], [-0.01, 1.01]),
    "hard_negative_gap_s": ([0.0], [-0.01]),
    "superhard_overlap": ([0.01, 0.99], [0.0, 1.0]),
    "shift_range_s": ([(0.1, 0.1)], [(0.0, 1.0), (1.0, 0.9)]),
    "audio_channels": ([1, 2], [0, 3]),
    "audio_sample_rate": ([None, 50], [0, -1]),
}


@pytest.mark.parametrize("field", SPEC_BOUNDS)
def test_each_spec_bound_just_inside_and_just_outside(field):
    index = make_index([clip("a", audio_channels=2), clip("b", audio_channels=2)])
    inside, outside = SPEC_BOUNDS[field]
    for value in inside:
        PairSampler(index, spec_with(**{field: value}), seed=0)
    for value in outside:
        with pytest.raises(ValueError, match=rf"^PairSpec: {re.escape(f'{field}={value}')} \(need [^;]*\)$"):
            PairSampler(index, spec_with(**{field: value}), seed=0)


def test_seed_and_epoch_length_bounds():
    index = make_index(TWO_CLIPS)
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
        PairSampler(index, spec_with(), seed=-1)
    assert PairSampler(index, spec_with(), seed=0).samples_per_epoch == 6  # default: one per usable clip
    assert PairSampler(index, spec_with(), seed=0, samples_per_epoch=1).samples_per_epoch == 1
    with pytest.raises(ValueError, match=r"^samples_per_epoch must be positive$"):
        PairSampler(index, spec_with(), seed=0, samples_per_epoch=-3)


def test_unusable_clips_are_left_out_with_the_reason_just_beyond_each_bound():
    # Spec: 5 frames at 10 fps (0.5 s), 0.5 s of audio. Each pair: the clip at the bound, the one beyond.
    index = make_index([
        clip("a", 0.0, fps=10.0), clip("a", 3.0, fps=9.99),  # the spec's rate is the clip's lowest
        clip("b", 0.0, num_frames=5), clip("b", 3.0, num_frames=4),  # 5 frames needed
        clip("c", 0.0, fps=20.0, num_frames=9), clip("c", 3.0, fps=20.0, num_frames=8),  # frames 0, 2, .., 8
        clip("d", 0.0, num_samples=50), clip("d", 3.0, num_samples=49),  # 50 samples needed
    ])
    sampler = PairSampler(index, spec_with(video_fps=10.0), seed=0)
    assert sampler.unusable == {
        "a@3": "clip at 9.99 fps is below the spec's video_fps 10",
        "b@3": "4 frames, too few for 5 frames at 10 fps",
        "c@3": "8 frames, too few for 5 frames at 10 fps",
        "d@3": "49 audio samples, the window needs 50",
    }
    assert list(sampler.index.clip_id) == ["a@0", "b@0", "c@0", "d@0"]
    assert sampler.samples_per_epoch == 4 and sampler.index.num_videos == 4
    assert list(sampler.index.group_begin) == [0, 1, 2, 3, 4]


def test_a_spec_rate_a_float_hair_above_the_clip_s_rate_counts_as_the_same():
    assert PairSampler(make_index(ONE_CLIP), spec_with(video_fps=10.0 + 1e-9), seed=0).unusable == {}


def test_spec_rates_below_one_are_allowed():
    # One frame at 0.5 fps (a 2 s window) and audio resampled to 1 Hz: 2 s is 200 samples at the clips' 100 Hz.
    sampler = PairSampler(make_index(ONE_CLIP), spec_with(video_frames=1, video_fps=0.5, audio_seconds=2.0,
                                                          audio_sample_rate=1, positive_fraction=1.0), seed=0)
    assert sampler.unusable == {} and sampler.recipe(0, 0).audio_num_samples == 200


def test_a_clip_needs_the_spec_s_audio_channels():
    index = make_index([clip("a", audio_channels=2), clip("b", audio_channels=1), clip("c", audio_channels=2)])
    sampler = PairSampler(index, spec_with(audio_channels=2), seed=0)
    assert sampler.unusable == {"b@0": "1 audio channel(s), the spec asks for 2"}
    assert list(sampler.index.clip_id) == ["a@0", "c@0"]


def test_a_clip_needs_a_video_start_whose_centred_audio_fits():
    # 2 s of audio around a 0.5 s window starting at frame s: audio start 10 s - 75 samples. With 205
    # samples only s = 8 fits (start 5 of 0..5); with 204 none does (0..4).
    # With 10 frames the last start is 5: the audio would fit from start 8 on, past the clip's end.
    index = make_index([clip("a", num_samples=205), clip("b", num_samples=204), clip("c"), clip("d", num_frames=10)])
    sampler = PairSampler(index, spec_with(audio_seconds=2.0), seed=0)
    assert sampler.unusable == {"b@0": "no video start where the centred audio window fits in the clip",
                                "d@0": "no video start where the centred audio window fits in the clip"}
    assert list(sampler.index.clip_id) == ["a@0", "c@0"]


def test_an_index_with_every_clip_usable_is_kept_as_it_is():
    index = make_index(TWO_CLIPS)
    sampler = PairSampler(index, spec_with(), seed=0)
    assert sampler.index is index and sampler.unusable == {}


def test_no_usable_clip_or_a_single_video_is_refused_naming_the_index():
    with pytest.raises(DataError) as error:
        PairSampler(make_index([clip("a", num_samples=10), clip("b", num_frames=2)]), spec_with(), seed=0)
    assert str(error.value) == ("synthetic.csv: no clip can hold the pair windows; "
                                "e.g. ('a@0', '10 audio samples, the window needs 50')")
    one_video = make_index([clip("a", 0.0), clip("a", 3.0), clip("b", num_frames=2)])
    with pytest.raises(DataError, match=r"^synthetic\.csv: negatives need clips from at least 2 videos, found 1$"):
        PairSampler(one_video, spec_with(), seed=0)


# -- recipes: which pair, in which epoch -------------------------------------------------------------

def test_pairs_outside_the_epoch_are_refused():
    sampler = PairSampler(make_index(TWO_CLIPS), spec_with(), seed=0)
    for epoch, i in ((0, -1), (0, 6), (-1, 0)):
        with pytest.raises(IndexError, match=rf"^pair {i} of epoch {epoch} is outside 0\.\.5$"):
            sampler.recipe(epoch, i)
    assert sampler.recipe(0, 5).index == 5


def test_a_recipe_is_drawn_from_seed_epoch_and_index_only():
    index = make_index(TWO_CLIPS)
    mix = NegativeMix(easy=0.25, hard=0.25, superhard=0.25, shifted=0.25)
    spec = spec_with(mix, positive_fraction=0.5, shift_range_s=(3.0, 3.0))
    for seed in (0, 7):
        forwards = PairSampler(index, spec, seed=seed, samples_per_epoch=24)
        backwards = PairSampler(index, spec, seed=seed, samples_per_epoch=24)
        for epoch in (0, 1, 5):
            recipes = draw(forwards, 24, epoch)
            assert recipes == [backwards.recipe(epoch, i) for i in reversed(range(24))][::-1]
            assert [(r.epoch, r.index, r.video_row) for r in recipes] == [(epoch, i, i % 6) for i in range(24)]
            # The first draw of the generator seeded with (tag, seed, epoch, index) decides positive or not.
            first = [np.random.default_rng([PAIR_SEED_TAG, seed, epoch, i]).random() for i in range(24)]
            assert [r.label for r in recipes] == [int(u < 0.5) for u in first]
            assert [r.kind == PairKind.POSITIVE for r in recipes] == [u < 0.5 for u in first]


def test_the_negative_mix_is_the_one_in_force_at_the_epoch():
    spec = PairSpec(video_frames=5, audio_seconds=0.5, positive_fraction=0.0, curriculum=(
        CurriculumStage(0, NegativeMix()), CurriculumStage(2, NegativeMix(easy=0.0, hard=1.0))))
    sampler = PairSampler(make_index(TWO_CLIPS), spec, seed=0, samples_per_epoch=60)
    assert {r.kind for r in draw(sampler, 60, epoch=1)} == {EASY}
    assert {r.kind for r in draw(sampler, 60, epoch=2)} == {HARD}


def test_kinds_come_in_the_shares_asked_for():
    mix = NegativeMix(easy=0.1, hard=0.2, superhard=0.3, shifted=0.4)
    sampler = PairSampler(make_index(TWO_CLIPS), spec_with(mix, positive_fraction=0.25, shift_range_s=(3.0, 3.0)),
                          seed=1, samples_per_epoch=4000)
    counts = Counter(r.kind for r in draw(sampler, 4000))
    assert not sampler.fallback_counts
    assert abs(counts[PairKind.POSITIVE] / 4000 - 0.25) < 0.03
    negatives = 4000 - counts[PairKind.POSITIVE]
    for kind, share in mix.as_kinds().items():
        assert abs(counts[kind] / negatives - share) < 0.03, (kind, counts)


class FixedDraw:
    """A generator stand-in whose uniform draw is chosen by the test."""

    def __init__(self, u: float) -> None:
        self.u = u

    def random(self) -> float:
        return self.u


def test_a_kind_is_drawn_by_where_the_uniform_falls_among_the_cumulative_shares():
    shares = {EASY: 0.25, HARD: 0.0, SUPERHARD: 0.5, SHIFTED: 0.25}  # cumulative 0.25, 0.25, 0.75, 1
    expected = [(0.0, EASY), (0.2499, EASY), (0.25, SUPERHARD), (0.7499, SUPERHARD), (0.75, SHIFTED),
                (0.9999, SHIFTED), (1.0, SHIFTED)]
    assert [_draw_kind(FixedDraw(u), shares) for u, _ in expected] == [kind for _, kind in expected]
    doubled = {kind: 2 * share for kind, share in shares.items()}  # the shares are read relative to their sum
    assert [_draw_kind(FixedDraw(u), doubled) for u, _ in expected] == [kind for _, kind in expected]


# -- where each kind puts its windows --------------------------------------------------------------

def test_positives_centre_the_audio_on_the_video_window_and_use_every_start_that_fits():
    index = make_index([clip("a"), clip("b", sample_rate=200, num_samples=600)])
    sampler = PairSampler(index, spec_with(positive_fraction=1.0), seed=0, samples_per_epoch=600)
    recipes = draw(sampler, 600)
    assert all(r.kind == PairKind.POSITIVE and r.label == 1 and r.audio_row == r.video_row
               and r.shift_s == 0.0 and r.fallback_from is None for r in recipes)
    # Window [s/10, s/10 + 0.5) s; audio of 0.5 s centred on it starts at s/10 s: sample 10 s (20 s at 200 Hz).
    assert placements(recipes) == {(s, row, s * 10 * (row + 1)) for s in range(26) for row in (0, 1)}
    assert all(r.frame_indices == tuple(range(r.video_start_frame, r.video_start_frame + 5)) for r in recipes)
    assert {r.audio_num_samples for r in recipes if r.audio_row == 1} == {100}  # 0.5 s at 200 Hz


def test_positives_never_start_past_the_last_frame_that_holds_the_window():
    # 10 frames: starts 0..5, although the audio (300 samples) would fit further on.
    index = make_index([clip("a", num_frames=10), clip("b", num_frames=10)])
    sampler = PairSampler(index, spec_with(positive_fraction=1.0), seed=0, samples_per_epoch=200)
    assert placements(draw(sampler, 200)) == {(s, row, 10 * s) for s in range(6) for row in range(2)}


def test_positives_with_audio_longer_than_the_video_window_keep_to_starts_where_it_fits():
    # 2 s of audio centred on frame s's window starts at sample 10 s - 75: in the clip (0..100) for s = 8..17.
    sampler = PairSampler(make_index(ONE_CLIP), spec_with(audio_seconds=2.0, positive_fraction=1.0), seed=0,
                          samples_per_epoch=600)
    recipes = draw(sampler, 600)
    assert placements(recipes) == {(s, row, 10 * s - 75) for s in range(8, 18) for row in range(3)}
    assert {r.audio_num_samples for r in recipes} == {200}


def test_frames_at_a_lower_rate_are_picked_by_timestamp():
    index = make_index([clip("a", fps=20.0, num_frames=60), clip("b", fps=20.0, num_frames=60)])
    sampler = PairSampler(index, spec_with(video_fps=10.0, positive_fraction=1.0), seed=0, samples_per_epoch=40)
    for r in draw(sampler, 40):
        start = r.video_start_frame
        assert r.frame_indices == (start, start + 2, start + 4, start + 6, start + 8)
        # Window [start/20, start/20 + 0.5) s, so its centred 0.5 s of audio starts at sample 5 * start.
        assert r.audio_start_sample == 5 * start


def test_easy_negatives_take_audio_anywhere_in_every_other_video_and_never_their_own():
    # Video b's clips hold 55 samples (audio starts 0..5) at 100 Hz; video c's are at 200 Hz.
    index = make_index([clip("a", 0.0), clip("a", 3.0), clip("b", 0.0, num_samples=55, num_frames=6),
                        clip("b", 3.0, num_samples=55, num_frames=6), clip("c", 0.0, sample_rate=200, num_samples=600),
                        clip("c", 3.0, sample_rate=200, num_samples=600)])
    sampler = PairSampler(index, spec_with(), seed=0, samples_per_epoch=1800)
    recipes = draw(sampler, 1800)
    video = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    for anchor in range(6):
        mine = [r for r in recipes if r.video_row == anchor]
        assert {r.audio_row for r in mine} == {row for row in range(6) if video[row] != video[anchor]}
        assert {r.video_start_frame for r in mine} == set(range(26 if video[anchor] != "b" else 2))
    assert all(r.kind == EASY and r.label == 0 and r.fallback_from is None and r.shift_s == 0.0 for r in recipes)
    starts = {row: {r.audio_start_sample for r in recipes if r.audio_row == row} for row in range(6)}
    assert starts[2] == starts[3] == set(range(6))
    assert all(0 <= r.audio_start_sample <= index.num_samples[r.audio_row] - r.audio_num_samples for r in recipes)
    assert {r.audio_num_samples for r in recipes if r.audio_row >= 4} == {100}


def test_hard_negatives_keep_at_least_the_gap_and_exactly_the_gap_is_allowed():
    # One 3 s clip per video, windows of 0.5 s: a 2 s gap fits only video 0-0.5 s + audio 2.5-3 s, or
    # audio 0-0.5 s + video 2.5-3 s.
    sampler = PairSampler(make_index(ONE_CLIP), spec_with(NegativeMix(easy=0.0, hard=1.0), hard_negative_gap_s=2.0),
                          seed=0, samples_per_epoch=90)
    recipes = draw(sampler, 90)
    assert all(r.kind == HARD and r.label == 0 and r.fallback_from is None and r.shift_s == 0.0 for r in recipes)
    assert placements(recipes) == {(s, row, k) for row in range(3) for s, k in ((0, 250), (25, 0))}
    assert all(r.audio_row == r.video_row for r in recipes)


def test_hard_negatives_that_cannot_keep_the_gap_become_counted_easy_ones():
    sampler = PairSampler(make_index(ONE_CLIP), spec_with(NegativeMix(easy=0.0, hard=1.0), hard_negative_gap_s=2.01),
                          seed=0, samples_per_epoch=30)
    recipes = draw(sampler, 30)
    assert all(r.kind == EASY and r.fallback_from == HARD and r.label == 0 for r in recipes)
    assert all(r.audio_row != r.video_row for r in recipes)  # easy: another video
    assert sampler.fallback_counts == Counter({HARD: 30})


def _hard_admissible(index: ClipIndex, anchor: int, gap: Fraction) -> set[tuple[int, int, int]]:
    """Every (video start, audio row, audio start) of the anchor's video whose windows are at least ``gap``
    apart, by exact arithmetic (frames and audio samples both a tenth of a second, windows of 5 of them)."""
    rows = [r for r in range(len(index)) if index.video_id[r] == index.video_id[anchor]]
    start = {r: Fraction(index.start_s[r]).limit_denominator() for r in rows}
    result = set()
    for s in range(int(index.num_frames[anchor]) - 4):
        v0 = start[anchor] + Fraction(s, 10)
        for row in rows:
            for k in range(int(index.num_samples[row]) - 4):
                a0 = start[row] + Fraction(k, 10)
                if max(a0 - (v0 + Fraction(1, 2)), v0 - (a0 + Fraction(1, 2))) >= gap:
                    result.add((s, row, k))
    return result


@pytest.mark.parametrize("gap", ["0", "1/2", "1"])
def test_hard_negatives_are_drawn_from_every_admissible_place_in_either_clip_of_the_video(gap):
    # Videos of two 1 s clips, audio at 10 Hz: few enough places (at most 6 video starts x 12) to list them
    # all. A 1 s gap leaves one place per clip: video 0-0.5 s with audio 1.5-2 s, and the reverse.
    index = make_index([clip(v, s, num_frames=10, sample_rate=10, num_samples=10) for v in "ab" for s in (0.0, 1.0)])
    spec = spec_with(NegativeMix(easy=0.0, hard=1.0), hard_negative_gap_s=float(Fraction(gap)))
    sampler = PairSampler(index, spec, seed=0, samples_per_epoch=4000)
    recipes = draw(sampler, 4000)
    assert all(r.kind == HARD and r.audio_num_samples == 5 for r in recipes)
    for anchor in range(4):
        drawn = placements([r for r in recipes if r.video_row == anchor])
        assert drawn == _hard_admissible(index, anchor, Fraction(gap))
    if gap == "1":
        assert placements(recipes) == {(0, 1, 5), (5, 0, 0), (0, 3, 5), (5, 2, 0)}


@pytest.mark.parametrize("overlap,late_from_end,last_late,first_early",
                         [(0.5, 25, 22, 3), (0.4, 30, 22, 3)])
def test_superhard_negatives_overlap_exactly_their_share_of_the_video_window(overlap, late_from_end, last_late,
                                                                           first_early):
    # Overlap 0.5 of a 0.5 s window = 0.25 s: audio starts 0.25 s before the window ends (sample 10 s + 25,
    # fits for s <= 22) or ends 0.25 s after it starts (sample 10 s - 25, fits for s >= 3). Overlap 0.4:
    # 10 s + 30 and 10 s - 30, which reach the clip's last audio start (250) and its first (0) exactly.
    sampler = PairSampler(make_index(ONE_CLIP), spec_with(NegativeMix(easy=0.0, superhard=1.0),
                                                          superhard_overlap=overlap), seed=0, samples_per_epoch=1500)
    recipes = draw(sampler, 1500)
    assert all(r.kind == SUPERHARD and r.label == 0 and r.fallback_from is None and r.shift_s == 0.0
               for r in recipes)
    expected = {(s, row, 10 * s + late_from_end) for s in range(last_late + 1) for row in range(3)}
    expected |= {(s, row, 10 * s - late_from_end) for s in range(first_early, 26) for row in range(3)}
    assert placements(recipes) == expected
    for r in recipes:
        (v0, v1), (a0, a1) = sampler.video_interval_s(r), sampler.audio_interval_s(r)
        assert min(v1, a1) - max(v0, a0) == pytest.approx(overlap * 0.5, abs=1e-9)


def test_superhard_audio_just_long_enough_for_the_overlap_and_just_too_short():
    mix = NegativeMix(easy=0.0, superhard=1.0)
    long_enough = PairSampler(make_index(ONE_CLIP), spec_with(mix, audio_seconds=0.25), seed=0, samples_per_epoch=30)
    assert {r.kind for r in draw(long_enough, 30)} == {SUPERHARD}
    too_short = PairSampler(make_index(ONE_CLIP), spec_with(mix, audio_seconds=0.24), seed=0, samples_per_epoch=30)
    recipes = draw(too_short, 30)
    assert all(r.kind == EASY and r.fallback_from == SUPERHARD and r.audio_row != r.video_row for r in recipes)
    assert too_short.fallback_counts == Counter({SUPERHARD: 30})


def test_superhard_negatives_with_no_start_that_fits_become_easy_ones():
    # One video start only (5 frames), 0.5 s of audio: the audio would start at -0.25 s or at 0.25 s of 0.5 s.
    index = make_index([clip("a", num_frames=5, num_samples=50), clip("b", num_frames=5, num_samples=50)])
    sampler = PairSampler(index, spec_with(NegativeMix(easy=0.0, superhard=1.0)), seed=0, samples_per_epoch=10)
    assert {(r.kind, r.fallback_from) for r in draw(sampler, 10)} == {(EASY, SUPERHARD)}


def test_shifted_negatives_move_the_positive_audio_by_the_drawn_offset_into_the_clip_that_holds_it():
    # Shift of exactly 3 s: from the clip at 0 s forwards into the one at 3 s, and from there backwards.
    spec = spec_with(NegativeMix(easy=0.0, shifted=1.0), shift_range_s=(3.0, 3.0))
    sampler = PairSampler(make_index(TWO_CLIPS), spec, seed=0, samples_per_epoch=600)
    recipes = draw(sampler, 600)
    assert not sampler.fallback_counts
    assert all(r.kind == SHIFTED and r.label == 0 for r in recipes)
    for r in recipes:
        forwards = r.video_row % 2 == 0
        assert r.shift_s == (3.0 if forwards else -3.0)
        assert r.audio_row == r.video_row + (1 if forwards else -1)
        assert r.audio_start_sample == 10 * r.video_start_frame
    assert {r.video_start_frame for r in recipes} == set(range(26))


def test_shifted_negatives_go_whichever_way_fits():
    # One 3 s clip, shift 2 s: forwards fits video starts 0..5, backwards 20..25.
    spec = spec_with(NegativeMix(easy=0.0, shifted=1.0), shift_range_s=(2.0, 2.0))
    sampler = PairSampler(make_index(ONE_CLIP), spec, seed=0, samples_per_epoch=600)
    recipes = draw(sampler, 600)
    expected = {(s, row, 10 * s + 200, 2.0) for s in range(6) for row in range(3)}
    expected |= {(s, row, 10 * s - 200, -2.0) for s in range(20, 26) for row in range(3)}
    assert {(r.video_start_frame, r.audio_row, r.audio_start_sample, r.shift_s) for r in recipes} == expected


def test_shifted_audio_moves_from_the_exact_positive_start_and_is_rounded_once():
    # 0.45 s of audio (45 samples) centred on [s/10, s/10 + 0.5) s starts at s/10 + 0.025 s: sample 10 s + 2.5.
    # Shifted by 2.004 s (200.4 samples) it starts at 10 s + 202.9 -> 203 (rounding first would give 202);
    # by -2.004 s at 10 s - 197.9 -> 10 s - 198.
    spec = spec_with(NegativeMix(easy=0.0, shifted=1.0), audio_seconds=0.45, shift_range_s=(2.004, 2.004))
    sampler = PairSampler(make_index(ONE_CLIP), spec, seed=0, samples_per_epoch=600)
    recipes = draw(sampler, 600)
    expected = {(s, row, 10 * s + 203, 2.004) for s in range(6) for row in range(3)}
    expected |= {(s, row, 10 * s - 198, -2.004) for s in range(20, 26) for row in range(3)}
    assert {(r.video_start_frame, r.audio_row, r.audio_start_sample, r.shift_s) for r in recipes} == expected
    for r in recipes:
        assert sampler.positive_audio_start_s(r) == pytest.approx(r.video_start_frame / 10 + 0.025, abs=1e-12)


def test_shifted_negatives_redraw_the_offset_and_fall_back_only_when_no_draw_fits():
    # Offsets of 2..4 s in a 3 s clip: only those up to 2.5 s fit (a quarter of the draws); 8 draws are tried.
    spec = spec_with(NegativeMix(easy=0.0, shifted=1.0), shift_range_s=(2.0, 4.0))
    sampler = PairSampler(make_index(ONE_CLIP), spec, seed=0, samples_per_epoch=600)
    recipes = draw(sampler, 600)
    shifted = [r for r in recipes if r.kind == SHIFTED]
    assert 0 < sampler.fallback_counts[SHIFTED] < 0.25 * 600 and len(shifted) > 0.75 * 600
    assert all(r.fallback_from == SHIFTED for r in recipes if r.kind == EASY)
    magnitudes = np.abs([r.shift_s for r in shifted])
    # Up to 2.505 s: the audio start is rounded to the nearest sample.
    assert magnitudes.min() >= 2.0 and magnitudes.max() <= 2.505 and magnitudes.max() - magnitudes.min() > 0.4
    for r in shifted:
        moved = sampler.audio_interval_s(r)[0] - sampler.positive_audio_start_s(r)
        assert moved == pytest.approx(r.shift_s, abs=0.5 / 100 + 1e-9)
    too_far = PairSampler(make_index(ONE_CLIP), spec_with(NegativeMix(easy=0.0, shifted=1.0), shift_range_s=(2.6, 3.0)),
                          seed=0, samples_per_epoch=30)
    assert {(r.kind, r.fallback_from) for r in draw(too_far, 30)} == {(EASY, SHIFTED)}


def test_window_times_are_in_seconds_of_the_source_video():
    # Row 1 is the clip at 3 s of video a, at 20 fps and 200 Hz.
    index = make_index([clip("a", 0.0), clip("a", 3.0, fps=20.0, num_frames=60, sample_rate=200, num_samples=600),
                        clip("b")])
    sampler = PairSampler(index, spec_with(audio_seconds=1.0), seed=0)
    recipe = PairRecipe(epoch=0, index=0, kind=HARD, label=0, video_row=1, frame_indices=(14, 15, 16, 17, 18),
                        audio_row=0, audio_start_sample=120, audio_num_samples=100)
    assert sampler.video_interval_s(recipe) == pytest.approx((3.7, 3.95), abs=1e-12)  # 5 frames at 20 fps
    assert sampler.audio_interval_s(recipe) == pytest.approx((1.2, 2.2), abs=1e-12)
    # 1 s of audio centred on 3.825 s starts at 3.325 s.
    assert sampler.positive_audio_start_s(recipe) == pytest.approx(3.325, abs=1e-12)
    assert sampler.audio_interval_s(PairRecipe(
        epoch=0, index=0, kind=HARD, label=0, video_row=0, frame_indices=(0, 1, 2, 3, 4), audio_row=1,
        audio_start_sample=240, audio_num_samples=200)) == pytest.approx((4.2, 5.2), abs=1e-12)
