"""Sound-source localisation: the scores against hand-computed cases, the ground truth of a crafted
annotation (which objects are heard, single vs multi-source), the centre prior, the AVTS/AVC maps, and
the whole evaluation on real synthetic clips."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from avssl_core.errors import DataError
from avssl_core.eval.localization import (
    EVENT_TAIL_S,
    audible_sources,
    binarize,
    box_mask,
    centre_box_map,
    clip_moments,
    evaluate_localization,
    iou,
    load_annotation,
    success_metrics,
)
from avssl_core.methods.registry import build_method
from avssl_core.models.cam import audio_similarity_map
from avssl_core.pretext.clip_index import INDEX_COLUMNS, ClipIndex
from avssl_core.pretext.spec import PairSpec
from avssl_core.transforms.features import ClipTransform, PairTransform

SR = 16000


# -- scores ------------------------------------------------------------------------------------------


def test_map_covering_the_box_scores_one_and_the_opposite_corner_zero():
    truth = box_mask([[0, 0, 8, 6]], 20, 20)  # top-left 8 x 6 box
    exact = truth.astype(np.float32) * 0.7  # any positive level: the map is min-max normalised
    assert iou(binarize(exact), truth) == 1.0
    opposite = np.zeros((20, 20), np.float32)
    opposite[14:, 12:] = 1.0
    assert iou(binarize(opposite), truth) == 0.0
    half = np.zeros((20, 20), np.float32)
    half[0:6, 4:12] = 1.0  # overlaps 4 of the box's 8 columns: 24 / (48 + 48 - 24)
    assert iou(binarize(half), truth) == pytest.approx(24 / 72)
    # A flat map points everywhere: its IoU is the box's share of the frame.
    assert iou(binarize(np.zeros((20, 20))), truth) == pytest.approx(48 / 400)


def test_threshold_is_relative_to_the_map_range():
    heat = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])  # normalised 0, .25, .5, .75, 1
    assert binarize(heat, 0.5).tolist() == [[False, False, True, True, True]]
    assert binarize(heat + 10, 0.7).tolist() == [[False, False, False, True, True]]


def test_ciou_and_auc_of_known_iou_lists():
    # Success rate at thresholds 0, .05, ..., 1: 1 at 0; 2/3 on (0, .5]; 1/3 on (.5, 1].
    got = success_metrics([0.0, 0.5, 1.0])
    assert got["cIoU@0.5"] == pytest.approx(2 / 3)
    expected_auc = 0.05 * ((1 + 2 / 3) / 2 + 9 * 2 / 3 + (2 / 3 + 1 / 3) / 2 + 9 * 1 / 3)
    assert got["AUC"] == pytest.approx(expected_auc)
    assert success_metrics([1.0, 1.0]) == {"cIoU@0.5": 1.0, "AUC": pytest.approx(1.0)}
    assert success_metrics([0.0, 0.0])["AUC"] == pytest.approx(0.05 / 2)  # only the threshold 0 succeeds
    assert success_metrics([0.49, 0.51])["cIoU@0.5"] == 0.5
    with pytest.raises(ValueError):
        success_metrics([])


def test_centre_prior_is_a_centred_box():
    prior = centre_box_map(100, 80, 0.5)
    rows, cols = np.nonzero(prior)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (25, 75, 20, 60)
    assert prior.sum() == 50 * 40
    centred = box_mask([[20, 25, 60, 75]], 100, 80)
    assert iou(binarize(prior), centred) == 1.0
    corner = box_mask([[0, 0, 40, 50]], 100, 80)  # overlap 25 rows x 20 columns
    assert iou(binarize(prior), corner) == pytest.approx(500 / (2000 + 2000 - 500))


def test_box_mask_uses_pixel_edges():
    mask = box_mask([[1.5, 0, 3, 2], [9, 9, 30, 30]], 10, 10)
    assert mask[:2, 1:3].all() and mask.sum() == 4 + 1  # fractional edge covers its pixel; clipped box


# -- ground truth of a crafted clip --------------------------------------------------------------------


def _crafted_clip(tmp_path: Path) -> tuple[ClipIndex, dict, Path]:
    """3 s at 25 fps, 64 x 64: a drum (sounding, one hit at frame 30 = 1.2 s), a mouth (sounding,
    continuous; visible up to frame 64) and a spinner that is a silent distractor."""
    row = {"clip_id": "v_00000", "video_id": "v", "start_s": 0.0, "end_s": 3.0, "label": "drum", "split": "test",
           "video_path": str(tmp_path / "v_00000.mp4"), "audio_path": str(tmp_path / "v_00000.wav"), "fps": 25,
           "num_frames": 75, "width": 64, "height": 64, "sample_rate": SR, "audio_channels": 1,
           "num_samples": 3 * SR}
    index_csv = tmp_path / "index.csv"
    with index_csv.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerow(row)
    meta = {"fps": 25, "width": 64, "height": 64, "num_frames": 75, "objects": [
        {"object_id": 0, "class": "drum", "sounding": True, "main": True, "boxes": [[2, 2, 20, 20]] * 75},
        {"object_id": 1, "class": "mouth", "sounding": True, "main": False,
         "boxes": [[40, 40, 60, 60]] * 65 + [None] * 10},
        {"object_id": 2, "class": "spinner", "sounding": False, "main": False, "boxes": [[20, 40, 36, 56]] * 75},
    ], "events": [{"object_id": 0, "time_s": 1.2, "frame": 30, "kind": "hit"}]}
    (tmp_path / "v_00000.json").write_text(json.dumps(meta))
    return ClipIndex.from_csv(index_csv, splits=None), meta, index_csv


def test_audible_sources_follow_events_and_skip_silent_objects(tmp_path):
    _, meta, _ = _crafted_clip(tmp_path)
    ids = lambda objs: [o["object_id"] for o in objs]  # noqa: E731
    assert ids(audible_sources(meta, 30, (1.0, 2.0))) == [0, 1]  # the hit is in the window; mouth always
    assert ids(audible_sources(meta, 70, (1.0, 2.0))) == [0]  # the mouth is out of view at frame 70
    assert ids(audible_sources(meta, 30, (1.2 + EVENT_TAIL_S - 0.1, 3.0))) == [0, 1]  # the hit still decays
    assert ids(audible_sources(meta, 30, (1.2 + EVENT_TAIL_S + 0.1, 3.0))) == [1]  # long after the hit
    assert ids(audible_sources(meta, 30, (0.0, 1.1))) == [1]  # before the hit
    assert 2 not in ids(audible_sources(meta, 10, (0.0, 3.0)))  # the silent spinner is never a source


def test_moments_split_into_single_and_multi_source(tmp_path):
    index, meta, _ = _crafted_clip(tmp_path)
    spec = PairSpec(video_frames=1, audio_seconds=1.0, audio_sample_rate=SR)  # AVC's windows
    moments = clip_moments(index, 0, meta, spec, (0, 0, 64, 64))
    # Candidates: the hit (frame 30) and the mouth's half-second grid (0, 12, ..., 72); the 1 s audio
    # window must fit the clip and start at least EVENT_TAIL_S in: frames 25..61.
    got = {m.frame: m.sources for m in moments}
    assert got == {30: (0, 1), 36: (0, 1), 48: (0, 1), 60: (1,)}
    by_frame = {m.frame: m for m in moments}
    assert by_frame[30].multi_source and not by_frame[60].multi_source
    assert by_frame[60].boxes == ((40.0, 40.0, 60.0, 60.0),)
    assert (20.0, 40.0, 36.0, 56.0) in by_frame[30].silent_boxes  # the spinner is drawn, not scored
    assert by_frame[30].truth().sum() == 18 * 18 + 20 * 20
    # The audio window is centred on the frame, as for a training positive: frame 30 shows 1.2 s.
    assert by_frame[30].audio_start == round((30 / 25 + 0.5 / 25) * SR - SR / 2)
    # A crop shifts and clips the boxes.
    cropped = {m.frame: m for m in clip_moments(index, 0, meta, spec, (4, 4, 56, 56))}
    assert cropped[60].boxes == ((36.0, 36.0, 56.0, 56.0),)


def test_missing_or_broken_annotation_names_the_file(tmp_path):
    with pytest.raises(DataError, match="nothing.json"):
        load_annotation(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"objects": [{"object_id": 0}]}')
    with pytest.raises(DataError, match="bad.json.*sounding"):
        load_annotation(bad)


def test_evaluation_crop_is_where_clip_transform_looks():
    frame = torch.arange(64 * 80 * 3, dtype=torch.int64).reshape(64, 80, 3).remainder(251).to(torch.uint8)
    transform = ClipTransform(short_side=64, size=56, train=False, mean=torch.zeros(3), std=torch.ones(3))
    top, left, h, w = transform.frame_crop(64, 80)
    out = transform(frame.unsqueeze(0))[:, 0]  # [3, 56, 56], no resize at this size
    expected = frame[top:top + h, left:left + w].permute(2, 0, 1).float() / 255
    assert (h, w) == (56, 56) and torch.allclose(out, expected)
    # At twice the resolution the crop is twice as large (and resized to 56 by the transform).
    assert transform.frame_crop(128, 128) == (8, 8, 112, 112)
    assert PairTransform().frame_crop(64, 80) == (0, 0, 64, 80)  # no ClipTransform: the whole frame


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["avts", "avc", "coattention", "cmac"])
def test_each_methods_preprocess_names_the_crop_of_its_clip_transform(name):
    """Localization maps boxes with ``preprocess.frame_crop``: every method's preprocessing (CMAC's
    SpecAugment wrapper included) names its ClipTransform's centre square, not the whole frame."""
    method = build_method(name, "tiny")
    if name != "coattention":  # its pixels use fixed Kinetics statistics; the others' (unfitted here) leave the crop alone
        method.normalizer.fitted.fill_(True)
    evaluation, training = method.preprocess(train=False), method.preprocess(train=True)
    crop = evaluation.frame_crop(64, 80)
    assert crop == evaluation.clip.frame_crop(64, 80) == training.frame_crop(64, 80)
    assert crop != (0, 0, 64, 80) and crop[2] == crop[3] and crop[1] == (80 - crop[3]) // 2


# -- the methods' maps -------------------------------------------------------------------------------


def test_audio_similarity_map_is_clipped_cosine_per_position():
    projection = nn.Linear(3, 3)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(3))
        projection.bias.zero_()
    features = torch.tensor([[1.0, -1.0], [0.0, 1.0]]).reshape(1, 1, 2, 2).repeat(1, 3, 1, 1) * 0
    features[0, :, 0, 0] = torch.tensor([2.0, 0, 0])  # along the audio: 1
    features[0, :, 0, 1] = torch.tensor([-1.0, 0, 0])  # against it: clipped to 0
    features[0, :, 1, 0] = torch.tensor([0.0, 3, 0])  # orthogonal: 0
    features[0, :, 1, 1] = torch.tensor([1.0, 1, 0])  # 45 degrees
    out = audio_similarity_map(features, projection, torch.tensor([[5.0, 0, 0]]))
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[1.0, 0.0], [0.0, 1 / math.sqrt(2)]]), atol=1e-6)


def _raw(method, n: int, seed: int = 0) -> dict:
    """A preprocessed batch: one video for every sample, audio of different content and loudness."""
    spec = method.pair_spec()
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (spec.video_frames, 64, 64, 3), dtype=torch.uint8, generator=g)
    samples = [{"video": video, "audio": (torch.rand(1, round(spec.audio_seconds * SR), generator=g) * 2 - 1)
                * (0.05 + i / n), "label": 1, "kind": 0, "index": i} for i in range(n)]
    return default_collate([method.preprocess(train=False)(s) for s in samples])


@pytest.mark.parametrize("name, size", [("avts", 3), ("avc", 2)])
def test_localization_maps_shape_sign_and_audio_dependence(name, size):
    torch.manual_seed(0)
    method = build_method(name, "tiny").eval()
    method.normalizer.fitted.fill_(True)
    batch = _raw(method, 3)
    maps = method.localization_maps(batch)
    assert maps.shape == (3, 1, size, size)  # tiny crops: AVTS 48 px (MC3 strides 16), AVC 56 px (ResNet18 strides 32)
    assert (maps >= 0).all() and maps.max() > 0
    # Same frames, different audio: the maps differ.
    assert (maps[0] - maps[1]).abs().max() > 1e-4 and (maps[1] - maps[2]).abs().max() > 1e-4
    # The projection applied per position averages to the clip embedding the method trains with, so the
    # map decomposes that embedding (the CAM argument).
    with torch.no_grad():
        fmap = method.video_net(batch["video"], return_map=True)
        projection = method.video_fc if name == "avts" else method.video_net.net.fc
        per_position = projection(fmap.movedim(1, -1)).flatten(1, -2).mean(1)
        assert torch.allclose(per_position, method.embed_video(batch), atol=1e-4)


@pytest.mark.parametrize("name, size, resized_size", [("avts", 3, 7), ("avc", 2, 4), ("cmac", 3, 7)])
def test_resized_method_keeps_its_weights_and_gives_finer_maps(name, size, resized_size):
    torch.manual_seed(0)
    method = build_method(name, "tiny").eval()
    method.normalizer.fitted.fill_(True)
    big = method.resized(112)
    assert not big.training and big.preset == method.preset
    assert {k: v for k, v in big.hparams.items() if k not in ("short_side", method.CROP_HPARAM)} == \
        {k: v for k, v in method.hparams.items() if k not in ("short_side", method.CROP_HPARAM)}
    assert big.hparams[method.CROP_HPARAM] == 112 and big.hparams["short_side"] >= 112
    for (k, a), (_, b) in zip(method.state_dict().items(), big.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    small_maps, big_maps = method.localization_maps(_raw(method, 2)), big.localization_maps(_raw(big, 2))
    assert small_maps.shape[-2:] == (size, size) and big_maps.shape[-2:] == (resized_size, resized_size)


def test_methods_sized_by_their_frames_refuse_to_resize():
    with pytest.raises(ValueError, match="coattention: its networks are sized"):
        build_method("coattention", "tiny").resized(112)


# -- end to end on real clips ------------------------------------------------------------------------


def test_evaluate_localization_on_real_clips(tiny_clips, tmp_path):
    import pandas as pd

    annotations = pd.read_csv(tiny_clips)["annotation_path"]
    assert len(annotations) == 16 and all(Path(p).is_file() for p in annotations), \
        "the fixture's clips must carry their annotations"
    torch.manual_seed(0)
    method = build_method("avc", "tiny")
    method.normalizer.fitted.fill_(True)
    torch.manual_seed(1)
    scratch = build_method("avc", "tiny")
    scratch.load_state_dict({**scratch.state_dict(), **{k: v for k, v in method.state_dict().items()
                                                        if k.startswith("normalizer.")}})
    entry = evaluate_localization(method, tiny_clips, "train", tmp_path / "loc", max_clips=8, overlays=3,
                                  scratch=scratch)
    assert {"dataset", "protocol", "pretrained", "scratch", "centre_prior", "single_source", "multi_source",
            "skipped", "overlays"} <= entry.keys()
    assert entry["skipped"] == 0 and entry["heads"] == 1 and "train" in entry["dataset"]
    assert entry["samples"] == entry["single_source"]["samples"] + entry["multi_source"]["samples"] > 0
    for system in ("pretrained", "scratch", "centre_prior"):
        assert set(entry[system]) == {"cIoU@0.5", "AUC"}
        assert all(0.0 <= v <= 1.0 for v in entry[system].values())
    # The reported numbers are those of the per-sample IoUs written beside the overlays.
    with (tmp_path / "loc" / "localization_samples.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == entry["samples"]
    for system in ("pretrained", "scratch", "centre_prior"):
        ious = [float(r[f"iou_{system}"]) for r in rows]
        assert entry[system]["AUC"] == pytest.approx(success_metrics(ious)["AUC"], abs=1e-3)
    assert len(entry["overlays"]) == 3
    for png in entry["overlays"]:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Same seed, same samples, same numbers.
    again = evaluate_localization(method, tiny_clips, "train", tmp_path / "again", max_clips=8, overlays=0)
    assert again["pretrained"] == entry["pretrained"] and again["overlays"] == []
