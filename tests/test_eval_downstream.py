"""The downstream evaluation suite: dataset layouts and their bad input, the synthetic export, retrieval and
probe metrics against hand computations, N-clip averaging, and `run_evaluate` end to end on real clips."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avssl_core.errors import DataError
from avssl_core.eval.action import video_accuracy
from avssl_core.eval.audio_probe import ProbeSettings, probe_split
from avssl_core.eval.clips import ClipReader, WindowSet, average_by_item, centred_windows, uniform_centres
from avssl_core.eval.export import export_esc50_layout, export_ucf101_layout
from avssl_core.eval.layouts import LabelledMedia, read_dcase, read_esc50, read_hmdb51, read_ucf101
from avssl_core.eval.retrieval import class_retrieval, cross_modal_retrieval, pair_retrieval
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _ucf(root: Path, *, splits=(1,)) -> Path:
    for cls in ("Drum", "Lamp"):
        for g in (1, 2, 3):
            _touch(root / cls / f"v_{cls}_g{g:02d}_c01.avi")
    (root / "classInd.txt").write_text("1 Drum\n2 Lamp\n")
    for k in splits:
        (root / f"trainlist{k:02d}.txt").write_text(
            "Drum/v_Drum_g01_c01.avi 1\nDrum/v_Drum_g02_c01.avi 1\nLamp/v_Lamp_g01_c01.avi 2\n")
        (root / f"testlist{k:02d}.txt").write_text("Drum/v_Drum_g03_c01.avi\n\nLamp/v_Lamp_g03_c01.avi\n")
    return root


# -- layouts --------------------------------------------------------------------------------------------

def test_ucf101_reader(tmp_path):
    data = read_ucf101(_ucf(tmp_path, splits=(1, 2)))
    assert data.classes == ("Drum", "Lamp")
    assert [s.name for s in data.splits] == ["split1", "split2"]
    split = data.splits[0]
    assert [m.label for m in split.train] == ["Drum", "Drum", "Lamp"]
    assert split.test[1].path == tmp_path / "Lamp" / "v_Lamp_g03_c01.avi" and split.test[1].group == "Lamp/g03"
    assert split.test[0].audio_path is None


def test_ucf101_missing_split_file(tmp_path):
    root = _ucf(tmp_path)
    (root / "testlist01.txt").unlink()
    with pytest.raises(DataError, match=r"testlist01\.txt: split file missing"):
        read_ucf101(root)
    with pytest.raises(DataError, match=r"trainlist03\.txt: split file missing"):
        read_ucf101(_ucf(tmp_path / "b"), split_ids=[3])
    (tmp_path / "b" / "classInd.txt").unlink()
    with pytest.raises(DataError, match=r"classInd\.txt: missing"):
        read_ucf101(tmp_path / "b")


def test_ucf101_unknown_class_names_file_and_line(tmp_path):
    root = _ucf(tmp_path)
    with (root / "testlist01.txt").open("a") as fh:
        fh.write("Flute/v_Flute_g03_c01.avi\n")
    with pytest.raises(DataError, match=r"testlist01\.txt:4: unknown class 'Flute'"):
        read_ucf101(root)
    (root / "testlist01.txt").write_text("Drum/v_Drum_g03_c01.avi 2\n")
    with pytest.raises(DataError, match=r"testlist01\.txt:1: class index '2' does not match"):
        read_ucf101(root)
    (root / "testlist01.txt").write_text("Drum/v_Drum_g09_c01.avi\n")
    with pytest.raises(DataError, match=r"testlist01\.txt:1: .*v_Drum_g09_c01\.avi does not exist"):
        read_ucf101(root)


def test_hmdb51_reader_and_bad_input(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    for cls in ("clap", "wave"):
        for v in ("a", "b", "c"):
            _touch(tmp_path / cls / f"{cls}_{v}.avi")
        (splits / f"{cls}_test_split1.txt").write_text(f"{cls}_a.avi 1\n{cls}_b.avi 2\n{cls}_c.avi 0\n")
    data = read_hmdb51(tmp_path, splits)
    assert data.classes == ("clap", "wave")
    assert [m.path.name for m in data.splits[0].train] == ["clap_a.avi", "wave_a.avi"]
    assert [m.path.name for m in data.splits[0].test] == ["clap_b.avi", "wave_b.avi"]
    (splits / "wave_test_split2.txt").write_text("wave_a.avi 2\nwave_b.avi 1\n")
    with pytest.raises(DataError, match=r"clap_test_split2\.txt: split file missing"):
        read_hmdb51(tmp_path, splits)
    (splits / "wave_test_split2.txt").unlink()
    (splits / "clap_test_split1.txt").write_text("clap_a.avi 1\nclap_b.avi 3\n")
    with pytest.raises(DataError, match=r"clap_test_split1\.txt:2: expected '<video> <0\|1\|2>'"):
        read_hmdb51(tmp_path, splits)
    (splits / "clap_test_split1.txt").write_text("clap_a.avi 1\nclap_b.avi 2\n")
    (splits / "jump_test_split1.txt").write_text("jump_a.avi 1\n")
    with pytest.raises(DataError, match=r"jump_test_split1\.txt: unknown class 'jump'"):
        read_hmdb51(tmp_path, splits)


def test_esc50_and_dcase_readers(tmp_path):
    esc = tmp_path / "esc"
    rows = [("1-a.wav", 1, 0, "dog"), ("2-a.wav", 2, 1, "rain"), ("1-b.wav", 1, 1, "rain"), ("2-b.wav", 2, 0, "dog")]
    for name, *_ in rows:
        _touch(esc / "audio" / name)
    (esc / "meta").mkdir()
    (esc / "meta" / "esc50.csv").write_text("filename,fold,target,category,esc10,src_file,take\n" +
                                            "".join(f"{n},{f},{t},{c},False,x,A\n" for n, f, t, c in rows))
    data = read_esc50(esc)
    assert data.classes == ("dog", "rain") and [s.name for s in data.splits] == ["fold1", "fold2"]
    assert {m.path.name for m in data.splits[0].test} == {"1-a.wav", "1-b.wav"}
    assert {m.group for m in data.splits[0].train} == {"fold2"}
    with (esc / "meta" / "esc50.csv").open("a") as fh:
        fh.write("2-c.wav,2,1,dog,False,x,A\n")
    with pytest.raises(DataError, match=r"esc50\.csv:6: category 'dog' with target 1 contradicts"):
        read_esc50(esc)

    dcase = tmp_path / "dcase"
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        _touch(dcase / "audio" / name)
    setup = dcase / "evaluation_setup"
    setup.mkdir()
    (setup / "fold1_train.txt").write_text("audio/a.wav\tbeach\naudio/b.wav\tbus\n")
    (setup / "fold1_evaluate.txt").write_text("audio/c.wav\tbeach\naudio/d.wav\tbus\n")
    data = read_dcase(dcase)
    assert data.classes == ("beach", "bus") and data.splits[0].test[1].label == "bus"
    (setup / "fold1_evaluate.txt").write_text("audio/c.wav\tbeach\naudio/d.wav\tpark\n")
    with pytest.raises(DataError, match=r"fold1_evaluate\.txt:2: unknown class 'park'"):
        read_dcase(dcase)
    (setup / "fold1_evaluate.txt").unlink()
    with pytest.raises(DataError, match=r"fold1_evaluate\.txt: split file missing"):
        read_dcase(dcase)


# -- export ---------------------------------------------------------------------------------------------

def labelled_index(tiny_clips: Path, dest: Path, *, broken: bool = False) -> Path:
    """tiny_clips relabelled into 2 classes of 4 videos: 3 for training and 1 for testing per class (so
    every test class has training videos). ``broken``: one more test video whose mp4 is not a video."""
    frame = pd.read_csv(tiny_clips)
    base = tiny_clips.parent.parent  # clip paths in index.csv are relative to the project root (cwd)
    videos = sorted(frame["video_id"].unique())
    frame["label"] = ["low" if videos.index(v) < 4 else "high" for v in frame["video_id"]]
    frame["split"] = ["test" if videos.index(v) in (3, 7) else "train" for v in frame["video_id"]]
    for col in ("video_path", "audio_path"):
        frame[col] = [str(p if Path(p).is_absolute() else Path.cwd() / p) for p in frame[col]]
    assert all(Path(p).is_file() for p in frame["video_path"]), base
    if broken:
        bad = dest.parent / "broken" / "not_a_video.mp4"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text("this is not an mp4")
        row = frame.iloc[0].copy()
        row["clip_id"], row["video_id"], row["split"], row["label"] = "broken_0", "broken", "test", "low"
        row["video_path"] = str(bad)
        frame = pd.concat([frame, row.to_frame().T], ignore_index=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(dest, index=False)
    return dest


def test_export_round_trips_through_the_readers(tiny_clips, tmp_path):
    index_csv = labelled_index(tiny_clips, tmp_path / "clips" / "index.csv")
    frame = pd.read_csv(index_csv)
    data = read_ucf101(export_ucf101_layout(index_csv, tmp_path / "ucf"))
    split = data.splits[0]
    assert data.classes == ("high", "low")
    assert len(split.train) == (frame["split"] == "train").sum() and len(split.test) == (frame["split"] == "test").sum()
    assert not {m.group for m in split.train} & {m.group for m in split.test}  # no source video on both sides
    by_path = {Path(p).resolve(): lab for p, lab in zip(frame["video_path"], frame["label"], strict=True)}
    for m in (*split.train, *split.test):
        assert by_path[m.path.resolve()] == m.label and m.audio_path is not None and m.audio_path.is_file()

    esc = read_esc50(export_esc50_layout(index_csv, tmp_path / "esc", num_folds=3, seed=1))
    assert len(esc.splits) == 3 and esc.classes == ("high", "low")
    meta = pd.read_csv(tmp_path / "esc" / "meta" / "esc50.csv")
    assert len(meta) == len(frame) and meta.groupby("src_file")["fold"].nunique().max() == 1  # folds by video
    for split in esc.splits:
        assert not {m.path for m in split.train} & {m.path for m in split.test}

    mixed = frame.copy()
    mixed.loc[0, "split"] = "test"  # a video with clips in both splits
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(DataError, match="has clips in splits"):
        export_ucf101_layout(tmp_path / "mixed.csv", tmp_path / "ucf2")


# -- metrics --------------------------------------------------------------------------------------------

def test_retrieval_metrics_against_a_hand_computed_example():
    # Queries on the unit circle; gallery at angles 0, 90, 180 degrees with classes a, b, a.
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    g_labels = ["a", "b", "a"]
    queries = torch.tensor([[0.9, 0.1], [0.1, 0.9], [-0.2, 1.0]])  # nearest: 0, 1, 1
    q_labels = ["a", "a", "b"]
    # ranks of the first same-class item: q0 -> 1 (g0); q1 -> order g1, g0, g2 -> 2; q2 -> order g1 -> 1
    out = class_retrieval(queries, q_labels, gallery, g_labels, ks=(1, 2))
    assert out == {"R@1": pytest.approx(2 / 3), "R@2": 1.0, "median_rank": 1.0}
    # Cross-modal: pair i is correct. Audio 1 is nearest to video 0 (rank 2); others rank 1.
    video = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    audio = torch.tensor([[0.1, 0.0], [1.0, 0.0], [0.0, 4.0]])
    assert pair_retrieval(audio, video, ks=(1,), metric="euclidean") == {"R@1": pytest.approx(2 / 3),
                                                                          "median_rank": 1.0}
    both = cross_modal_retrieval(video, audio, ["x", "x", "x"], ks=(1,), metric="euclidean")
    # v2a: every video's nearest audio is its own (video 1 at x=3: audio 1 at 2.0 beats audio 0 at 2.9).
    assert both["a2v_R@1"] == pytest.approx(2 / 3) and both["v2a_R@1"] == 1.0 and both["a2a_R@1"] == 1.0
    with pytest.raises(ValueError, match="no correct item"):  # 'y' has no other member within the modality
        cross_modal_retrieval(video, audio, ["x", "x", "y"], ks=(1,))
    # Windows of one clip (group) never retrieve each other within a modality: with audio 0 and 1 in one
    # clip, audio 0's nearest same-class item outside it is audio 2 (rank 1, the only one left).
    grouped = cross_modal_retrieval(video, audio, ["x", "x", "x"], ks=(1,), groups=[0, 0, 1])
    assert grouped["a2a_R@1"] == 1.0 and grouped["a2v_R@1"] == pytest.approx(2 / 3)
    # Five points on a line, classes x x y x y, the first two in one clip. Hand-ranked first hits:
    # with clip exclusion [2, 2, 4, 3, 2]; without it the first two find each other: [1, 1, 4, 3, 2].
    line = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [5.0, 0.0], [6.0, 0.0]])
    labels = ["x", "x", "y", "x", "y"]
    assert class_retrieval(line, labels, line, labels, ks=(1, 2), metric="euclidean", exclude_self=True,
                           groups=[0, 0, 1, 2, 3]) == {"R@1": 0.0, "R@2": pytest.approx(3 / 5), "median_rank": 2.0}
    assert class_retrieval(line, labels, line, labels, ks=(1, 2), metric="euclidean", exclude_self=True) == {
        "R@1": pytest.approx(2 / 5), "R@2": pytest.approx(3 / 5), "median_rank": 2.0}
    assert set(cross_modal_retrieval(video, audio, ["x", "x", "x"], ks=(1, 5))) == {
        f"{d}_{m}" for d in ("a2v", "v2a", "a2a", "v2v") for m in ("R@1", "R@5", "median_rank")}


def test_probe_chooses_c_on_training_folds_only():
    rng = np.random.default_rng(0)
    n_files, subclips = 40, 3
    y_file = np.repeat(["a", "b"], n_files // 2)
    centres = np.where(y_file[:, None] == "a", 1.0, -1.0) * np.array([1.0, 0.5])
    x = np.repeat(centres, subclips, axis=0) + rng.normal(0, 1.2, (n_files * subclips, 2))
    y = np.repeat(y_file, subclips)
    files = np.repeat(np.arange(n_files), subclips)
    folds = files % 4
    train, test = folds != 3, folds == 3
    settings = ProbeSettings(c_grid=(0.001, 0.01, 1.0, 100.0))
    first = probe_split(x[train], y[train], folds[train], x[test], y[test], files[test], settings)
    # Flipping the test fold's labels flips its accuracy, and never moves the chosen C or the CV score.
    scrambled = probe_split(x[train], y[train], folds[train], x[test], np.where(y[test] == "a", "b", "a"),
                            files[test], settings)
    assert first["C"] == scrambled["C"] and first["cv_accuracy"] == scrambled["cv_accuracy"]
    assert first["accuracy"] + scrambled["accuracy"] == pytest.approx(1.0)
    assert first["test_files"] == n_files // 4 and first["accuracy"] > 0.6


def test_n_clip_averaging_matches_a_direct_computation():
    assert uniform_centres(10.0, 2.0, 4) == [2.0, 4.0, 6.0, 8.0]
    assert uniform_centres(3.0, 1.0, 1) == [1.5]
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55], [0.1, 0.9]])
    items = np.array([0, 0, 0, 1, 1, 2])
    targets = np.array([0, 0, 0, 1, 1, 1])
    out = video_accuracy(probs, items, targets)
    # Video 0 mean [0.467, 0.533] -> class 1 (wrong); video 1 mean [0.525, 0.475] -> 0 (wrong); video 2 right.
    assert out == {"clip@1": pytest.approx(3 / 6), "video@1": pytest.approx(1 / 3), "test_clips": 6,
                   "test_videos": 3}
    assert video_accuracy(probs, items, targets, exclude={0})["test_videos"] == 2
    mean, kept = average_by_item(probs, items, exclude={1})
    assert kept.tolist() == [0, 2] and torch.allclose(mean[0], probs[:3].mean(0))


def test_labelled_subset_keeps_whole_source_videos_up_to_k_per_class():
    from avssl_core.eval.action import labelled_subset

    items = tuple(LabelledMedia(Path(f"{c}_{g}_{k}.mp4"), c, f"{c}{g}")
                  for c in ("drum", "lamp") for g in range(4 if c == "drum" else 1) for k in range(3))
    subset = labelled_subset(items, 2, seed=0)
    groups = {(m.label, m.group) for m in subset}
    assert sum(label == "drum" for label, _ in groups) == 2 and ("lamp", "lamp0") in groups  # lamp has one
    assert len(subset) == 3 * len(groups)  # every clip of a chosen video, none of the others
    assert [m for m in items if m in subset] == list(subset)  # original order
    assert labelled_subset(items, 2, seed=0) == subset and labelled_subset(items, 9, seed=0) == items
    assert any(labelled_subset(items, 2, seed=s) != subset for s in range(1, 6))  # the draw is seeded


def test_pretext_tally_averages_the_chance_a_method_reports_per_sample():
    from avssl_core.methods.base import StepOutput
    from avssl_core.train.pretext_tally import PretextTally

    tally = PretextTally()
    loss = torch.zeros(())
    tally.add(StepOutput(loss, {"chance": 0.2}, correct=torch.tensor([1, 0, 0, 1, 0])))
    tally.add(StepOutput(loss, {"chance": 0.5}, correct=torch.tensor([1, 1])))
    result = PretextTally.result(tally.counts, 0)
    assert result["accuracy"] == pytest.approx(4 / 7)
    assert result["chance"] == pytest.approx((0.2 * 5 + 0.5 * 2) / 7)
    pairs = PretextTally()  # a pair classifier reports none: the caller's 0.5 applies
    pairs.add(StepOutput(loss, {}, correct=torch.tensor([1, 0])))
    assert PretextTally.result(pairs.counts, 0)["chance"] is None


def test_windows_decode_at_the_spec_and_count_undecodable_files(tiny_clips, tmp_path):
    frame = pd.read_csv(tiny_clips)
    row = frame.iloc[0]
    good = LabelledMedia(path=Path(row["video_path"]).resolve(), label="x", group="g",
                         audio_path=Path(row["audio_path"]).resolve())
    bad_path = tmp_path / "bad.mp4"
    bad_path.write_bytes(b"\x00" * 100)
    bad = LabelledMedia(path=bad_path, label="x", group="h", audio_path=None)
    spec = PairSpec(video_frames=4, video_fps=4.0, audio_seconds=1.0, positive_fraction=0.5,
                    curriculum=(CurriculumStage(0, NegativeMix(easy=1.0)),), audio_channels=1,
                    audio_sample_rate=8000)
    reader = ClipReader(spec)
    skipped: dict[int, str] = {}
    windows = centred_windows(reader, [good, bad], 3, skipped)
    assert [w.item for w in windows] == [0, 0, 0] and list(skipped) == [1] and "bad.mp4" in skipped[1]
    raw = reader.raw_sample(good, windows[0].centre_s, 0)
    assert raw["video"].shape == (4, 64, 64, 3) and raw["audio"].shape == (1, 8000)
    identity = WindowSet(reader, [good, bad], windows, lambda s: s, {"x": 0}, seed=0)
    assert identity[1]["target"] == 0 and identity[2]["item"] == 0


def tiny_run_overrides(index_csv, tmp_path) -> list[str]:
    """Paths under tmp_path and a 2-step pretraining on ``index_csv``: what an end-to-end evaluate test
    pretrains before it evaluates."""
    return [
        f"paths.clips_dir={index_csv.parent}", f"paths.metrics_dir={tmp_path / 'metrics'}",
        f"pretrain.out_dir={tmp_path / 'pretrain'}", "pretrain.val_split=train", "pretrain.val_pairs=8",
        "pretrain.pairs_per_clip=1", "pretrain.train.batch_size=4", "pretrain.train.max_steps=2",
        "pretrain.train.epochs=1", "pretrain.train.progress=false",
        f"evaluate.methods_dir={tmp_path / 'pretrain'}", f"evaluate.out_dir={tmp_path / 'evaluate'}",
    ]


# -- end to end -----------------------------------------------------------------------------------------

def test_run_evaluate_end_to_end(tiny_clips, tmp_path):
    from avssl_core.config import load_config
    from avssl_core.stages.evaluate import run_evaluate
    from avssl_core.stages.pretrain import run_pretrain

    index_csv = labelled_index(tiny_clips, tmp_path / "clips" / "index.csv", broken=True)
    tasks = ["pretext", "frozen", "action_recognition", "audio_probe", "retrieval"]
    optional = {"localization": "avssl_core.eval.localization", "tsne": "avssl_core.eval.embedding_plot"}
    tasks += [t for t, mod in optional.items() if importlib.util.find_spec(mod) is not None]
    cfg = load_config(None, [
        *tiny_run_overrides(index_csv, tmp_path),
        f"evaluate.tasks={json.dumps(tasks)}", "evaluate.pretext.pairs=8", "evaluate.action.epochs=1",
        "evaluate.action.test_clips=2", "evaluate.action.batch_size=4", "evaluate.audio.clips_per_file=2",
        "evaluate.audio.num_folds=3", "evaluate.retrieval.clips_per_video=2", "evaluate.localization.max_clips=4",
        "evaluate.batch_size=8", "evaluate.action.labelled_groups_per_class=2",
        "evaluate.localization.input_size=112", "evaluate.frozen.clips_per_video=2", "evaluate.bootstrap=200",
    ])
    run_pretrain(cfg, "avc", "tiny")
    metrics = run_evaluate(cfg, "avc")

    on_disk = json.loads((tmp_path / "metrics" / "avc.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert {"method", "preset", "data", "seconds", "tasks", "pictures"} <= set(on_disk)
    expected = {"pretext_easy", "pretext_easy75_hard25", "pretext_shifted", "action_recognition", "audio_probe",
                "retrieval_video", "retrieval_cross", "frozen_video", "frozen_audio"} | (
                    {"localization"} if "localization" in tasks else set())
    assert set(on_disk["tasks"]) == expected
    names = {"action_recognition": {"clip@1", "video@1"}, "audio_probe": {"accuracy"},
             "retrieval_video": {"R@1", "R@5", "R@10", "median_rank"},
             "frozen_video": {"knn_k1", "linear_k1", "knn_all", "linear_all"},
             "frozen_audio": {"knn_k1", "linear_k1", "knn_all", "linear_all"}}
    for task, entry in on_disk["tasks"].items():
        assert isinstance(entry["dataset"], str) and isinstance(entry["protocol"], str)
        assert isinstance(entry["skipped"], int)
        for kind in ("pretrained", "scratch"):
            if task in names:
                assert set(entry[kind]) == names[task]
            assert all(isinstance(v, float) for v in entry[kind].values())
    action = on_disk["tasks"]["action_recognition"]
    assert action["skipped"] == 1  # the broken test video: counted, not fatal
    assert "2 uniformly spaced clips/video" in action["protocol"]
    assert "labels of 2 source video(s) per class only" in action["protocol"]
    if "localization" in tasks:
        assert "maps computed on 112 px centre crops (the method trained on 56 px)" in \
            on_disk["tasks"]["localization"]["protocol"]
    assert on_disk["tasks"]["retrieval_cross"]["skipped"] == 1
    assert on_disk["tasks"]["audio_probe"]["skipped"] == 0  # its WAV is fine
    for entry in (action, on_disk["tasks"]["audio_probe"]):
        for kind in ("pretrained", "scratch"):
            assert all(0.0 <= v <= 1.0 for v in entry[kind].values())
    per_item = json.loads((tmp_path / "evaluate" / "avc" / "details.json").read_text())["per_item"]
    for task, metrics_with_intervals in (("frozen_video", names["frozen_video"]),
                                         ("frozen_audio", names["frozen_audio"]), ("retrieval_video", {"R@1"}),
                                         ("action_recognition", {"video@1"})):
        entry = on_disk["tasks"][task]
        assert set(entry["intervals"]) == metrics_with_intervals
        for metric, record in entry["intervals"].items():
            for kind in ("pretrained", "scratch"):
                assert record[kind]["value"] == pytest.approx(entry[kind][metric])
                assert record[kind]["low"] <= record[kind]["value"] <= record[kind]["high"]
            diff = record["difference"]
            assert diff["low"] <= diff["value"] <= diff["high"]
            assert diff["value"] == pytest.approx(entry["pretrained"][metric] - entry["scratch"][metric])
            assert record["verdict"] in ("win", "loss", "not separable")
            # The broken test video's mp4 is skipped; its WAV is fine, so the audio probe scores it too.
            assert record["test_groups"] == (3 if task == "frozen_audio" else 2)
            # details.json keeps the scores behind the interval, per test item (an ablation objective's items)
            scores = per_item[task][metric]
            assert len(scores["item"]) == len(scores["group"]) == record["test_items"] == len(scores["pretrained"])
            assert len(set(scores["group"])) == record["test_groups"]
            for kind in ("pretrained", "scratch"):
                assert np.mean(scores[kind]) == pytest.approx(entry[kind][metric])
    for task in ("frozen_video", "frozen_audio"):  # the trivial baseline beside scratch, with its interval
        entry = on_disk["tasks"][task]
        assert set(entry["trivial"]) == names[task]
        for metric, record in entry["intervals"].items():
            assert record["trivial"]["value"] == pytest.approx(entry["trivial"][metric])
            assert record["trivial"]["low"] <= record["trivial"]["value"] <= record["trivial"]["high"]
    assert on_disk["tasks"]["frozen_video"]["skipped"] == 1 and on_disk["tasks"]["frozen_audio"]["skipped"] == 0
    assert "kNN: cosine similarity" in on_disk["tasks"]["frozen_video"]["protocol"]
    details = json.loads((tmp_path / "evaluate" / "avc" / "details.json").read_text())
    assert details["frozen_video"]["probes"]["pretrained"]["linear_k1"]["train_videos"] == 2
    assert "not_a_video.mp4" in " ".join(details["action_recognition"]["skipped_files"])
    assert (tmp_path / "evaluate" / "avc" / "datasets" / "ucf101" / "trainlist01.txt").is_file()
    for rel in on_disk["pictures"].values():
        assert Path(rel).is_file()
    shutil.rmtree(tmp_path / "pretrain")
    with pytest.raises(DataError, match="no pretrained model"):
        run_evaluate(cfg, "avc")


def test_the_frozen_probes_alone_give_both_t_sne_pictures(tiny_clips, tmp_path):
    """The default tasks leave the audio probe out (README, Evaluation): the frozen probes' features then
    give the t-SNE pictures, of the test and training clips, which retrieval and the audio probe would
    otherwise have given."""
    from avssl_core.config import load_config
    from avssl_core.stages.evaluate import run_evaluate
    from avssl_core.stages.pretrain import run_pretrain

    index_csv = labelled_index(tiny_clips, tmp_path / "clips" / "index.csv")
    cfg = load_config(None, [*tiny_run_overrides(index_csv, tmp_path), 'evaluate.tasks=["frozen", "tsne"]',
                             "evaluate.frozen.clips_per_video=1", "evaluate.bootstrap=20", "evaluate.batch_size=8"])
    run_pretrain(cfg, "avts", "tiny")
    metrics = run_evaluate(cfg, "avts")
    assert set(metrics["tasks"]) == {"frozen_video", "frozen_audio"}
    assert set(metrics["pictures"]) == {"tsne_video", "tsne_audio"}
    for png in metrics["pictures"].values():
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
