"""The localization scores' edges: the centre prior's range and smallest box, defaults, a box moved into a crop,
and the messages (found by mutation testing: scripts/mutation.sh localization). Public functions only."""

from __future__ import annotations

import numpy as np
import pytest

from avssl_core.eval.localization import binarize, box_mask, centre_box_map, crop_box, iou, success_metrics

pytestmark = pytest.mark.timeout(30)


def test_centre_prior_accepts_exactly_the_fractions_in_0_to_1():
    assert centre_box_map(6, 4, 1.0).tolist() == np.ones((6, 4)).tolist()  # 1 is the whole frame
    for bad in (0.0, 1.5, -0.5):
        with pytest.raises(ValueError, match=rf"^centre fraction must be in \(0, 1\], got {bad}$"):
            centre_box_map(6, 4, bad)


def test_centre_prior_defaults_to_half_and_keeps_at_least_one_pixel():
    assert np.array_equal(centre_box_map(100, 80), centre_box_map(100, 80, 0.5))
    tiny = centre_box_map(5, 5, 0.1)  # 0.5 pixel rounds to none: one pixel is kept, in the middle
    assert np.argwhere(tiny).tolist() == [[2, 2]]


def test_no_iou_values_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^success_metrics: no IoU values$"):
        success_metrics([])


def test_a_flat_or_signed_8_bit_map_still_gives_a_boolean_mask():
    flat = binarize(np.full((3, 4), 0.2, dtype=np.float32))
    assert flat.dtype == bool and flat.all()
    # -100..100 in int8: the range (200) would wrap around to -56 if taken in the map's own type.
    assert binarize(np.array([[-100, 0, 100]], dtype=np.int8)).tolist() == [[False, True, True]]


def test_a_box_moves_into_the_crop_and_is_clipped_to_it():
    crop = (10, 20, 32, 32)  # top, left, height, width
    assert crop_box([25.0, 12.0, 40.0, 30.0], crop) == (5.0, 2.0, 20.0, 20.0)
    assert crop_box([15.0, 4.0, 30.0, 20.0], crop) == (0.0, 0.0, 10.0, 10.0)  # starts left of and above it
    assert crop_box([40.0, 30.0, 70.0, 60.0], crop) == (20.0, 20.0, 32.0, 32.0)  # ends right of and below it
    assert crop_box([0.0, 0.0, 20.0, 10.0], crop) is None  # touches the crop's corner only
    assert crop_box([52.0, 10.0, 60.0, 30.0], crop) is None  # right of it
    assert crop_box([25.0, 42.0, 40.0, 60.0], crop) is None  # below it
    # The moved box masks the same pixels as the frame box inside the crop.
    frame = box_mask([[25.0, 12.0, 40.0, 30.0]], 64, 64)[10:42, 20:52]
    assert iou(box_mask([crop_box([25.0, 12.0, 40.0, 30.0], crop)], 32, 32), frame) == 1.0


def test_box_mask_is_boolean_and_ignores_boxes_outside_the_frame():
    assert box_mask([[1, 1, 3, 3]], 4, 4).dtype == bool
    # Above the frame (its bottom edge at -5): a negative end would count rows from the bottom if used.
    assert not box_mask([[1, -9, 3, -5]], 10, 10).any()
    assert not box_mask([[-9, 1, -5, 3]], 10, 10).any()  # left of it


def test_two_empty_masks_have_iou_zero():
    empty = np.zeros((4, 4), dtype=bool)
    assert iou(empty, empty) == 0.0
