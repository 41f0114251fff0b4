"""The labelled synthetic clips (data/clips/index.csv) exported in the benchmarks' layouts, so they are read by
exactly the readers that read UCF101 and ESC-50 (avssl_core/eval/layouts.py).

Media are linked, not copied (a symbolic link to the clip, or a copy where links are not allowed): the
export is a view of the clip folder. Every clip of a source video lands on the same side of a split (UCF101:
group gNN = one source video; ESC-50: fold = a set of source videos), so no video is in both training and
test data.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avssl_core.errors import DataError
from avssl_core.pretext.clip_index import ClipIndex


def _link(src: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    try:
        os.symlink(os.path.abspath(src), dest)
    except OSError:
        shutil.copyfile(src, dest)


def _video_of_split(index: ClipIndex) -> dict[str, str]:
    """video_id -> split, refusing a video whose clips are in several splits."""
    split_of: dict[str, str] = {}
    for vid, split, clip in zip(index.video_id, index.split, index.clip_id, strict=True):
        if split_of.setdefault(str(vid), str(split)) != str(split):
            raise DataError(f"{index.source}: video {vid} has clips in splits {split_of[str(vid)]!r} and "
                            f"{split!r} (clip {clip}); splits must be by source video")
    return split_of


def _class_name(label: str, source: str) -> str:
    if not label or any(ch in label for ch in " /\\\t"):
        raise DataError(f"{source}: label {label!r} cannot be a class folder name (empty, or has spaces or slashes)")
    return label


def export_ucf101_layout(index_csv: str | Path, out_root: str | Path, *, train_splits: Sequence[str] = ("train",),
                         test_splits: Sequence[str] = ("test",), root: str | Path | None = None) -> Path:
    """Write ``out_root`` in UCF101 layout with one split (trainlist01/testlist01): each clip becomes
    ``<label>/v_<label>_g<video>_c<clip>.mp4`` (its WAV beside it), ``train_splits`` clips are listed for
    training and ``test_splits`` clips for testing. Returns ``out_root``."""
    out = Path(out_root)
    index = ClipIndex.from_csv(index_csv, splits=[*train_splits, *test_splits], root=root)
    _video_of_split(index)
    classes = sorted({_class_name(str(label), index.source) for label in index.label})
    number = {c: i + 1 for i, c in enumerate(classes)}
    video_number = {v: i + 1 for i, v in enumerate(sorted(set(index.video_id.tolist())))}
    train_lines, test_lines = [], []
    for row in range(len(index)):
        label, vid = str(index.label[row]), str(index.video_id[row])
        clip_no = row - int(index.group_begin[index.video_group[row]]) + 1
        name = f"v_{label}_g{video_number[vid]:03d}_c{clip_no:02d}"
        _link(str(index.video_path[row]), out / label / f"{name}{Path(index.video_path[row]).suffix}")
        _link(str(index.audio_path[row]), out / label / f"{name}.wav")
        rel = f"{label}/{name}{Path(index.video_path[row]).suffix}"
        if index.split[row] in train_splits:
            train_lines.append(f"{rel} {number[label]}")
        else:
            test_lines.append(rel)
    if not train_lines or not test_lines:
        raise DataError(f"{index.source}: the export needs clips in {list(train_splits)} and in {list(test_splits)}, "
                        f"found {len(train_lines)} and {len(test_lines)}")
    (out / "classInd.txt").write_text("".join(f"{number[c]} {c}\n" for c in classes))
    (out / "trainlist01.txt").write_text("\n".join(train_lines) + "\n")
    (out / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    return out


def export_esc50_layout(index_csv: str | Path, out_root: str | Path, *, splits: Sequence[str] | None = None,
                        num_folds: int = 5, seed: int = 0, root: str | Path | None = None) -> Path:
    """Write ``out_root`` in ESC-50 layout (meta/esc50.csv, audio/<clip>.wav) from the clips of ``splits``
    (None: all). Source videos are dealt to ``num_folds`` folds class by class, in a seeded order, so each
    fold holds about the same share of every class and all clips of a video share a fold."""
    if num_folds < 2:
        raise DataError(f"export_esc50_layout: num_folds must be >= 2, got {num_folds}")
    out = Path(out_root)
    index = ClipIndex.from_csv(index_csv, splits=splits, root=root)
    label_of: dict[str, str] = {}
    for vid, label in zip(index.video_id, index.label, strict=True):
        if label_of.setdefault(str(vid), str(label)) != str(label):
            raise DataError(f"{index.source}: video {vid} has clips with labels {label_of[str(vid)]!r} and {label!r}")
    classes = sorted({_class_name(v, index.source) for v in label_of.values()})
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    next_fold = 0
    for cls in classes:
        videos = sorted(v for v, lab in label_of.items() if lab == cls)
        for vid in rng.permutation(videos).tolist():
            fold_of[vid] = next_fold % num_folds + 1
            next_fold += 1  # carries over between classes so small classes do not all start in fold 1
    if len(set(fold_of.values())) < num_folds:
        raise DataError(f"{index.source}: {len(fold_of)} source videos cannot fill {num_folds} folds")
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for row in range(len(index)):
        clip, vid, label = str(index.clip_id[row]), str(index.video_id[row]), str(index.label[row])
        _link(str(index.audio_path[row]), out / "audio" / f"{clip}.wav")
        take = row - int(index.group_begin[index.video_group[row]])
        rows.append(f"{clip}.wav,{fold_of[vid]},{classes.index(label)},{label},False,{vid},{take}")
    (out / "meta").mkdir(parents=True, exist_ok=True)
    (out / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return out
