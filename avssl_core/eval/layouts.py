"""Readers for the downstream datasets' on-disk layouts, so real benchmarks and the exported synthetic
data go through the same code.

Video (action recognition, retrieval):
  UCF101   <root>/<Class>/<video>        media; any container FFmpeg reads (.avi, .mp4, ...)
           <splits_dir>/classInd.txt     "<1-based index> <Class>" per line
           <splits_dir>/trainlist0N.txt  "<Class>/<video> <1-based index>" per line
           <splits_dir>/testlist0N.txt   "<Class>/<video>" per line (an index after it is checked if given)
  HMDB51   <root>/<class>/<video>
           <splits_dir>/<class>_test_split<N>.txt  "<video> <id>" per line: 1 train, 2 test, 0 unused
Audio (linear probe):
  ESC-50   <root>/meta/esc50.csv (columns filename, fold, target, category; others ignored)
           <root>/audio/<filename>
  DCASE    <root>/evaluation_setup/fold<N>_train.txt and fold<N>_evaluate.txt, one file per line:
           "<path relative to root><TAB or spaces><label>" (the DCASE 2013-2017 scene-classification
           setup files; further columns are ignored). Labels of the evaluate list must occur in the train list.

A media file may have a sibling ``<stem>.wav``; its audio is then read from that WAV (the exported synthetic
clips keep audio there) instead of from the container.

Errors name the file and the line: a missing split file, a class the split does not know, a listed file that
does not exist, a malformed line. Files that exist but do not decode are the evaluator's business: it skips
and counts them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from avssl_core.errors import DataError


@dataclass(frozen=True)
class LabelledMedia:
    """One video or audio file with its class. ``group`` is the source it was cut from (UCF101's gXX, a
    synthetic video id), so splits can be checked for leaks; ``audio_path`` is a sibling WAV if any."""

    path: Path
    label: str
    group: str
    audio_path: Path | None = None


@dataclass(frozen=True)
class Split:
    """One train/test division of a dataset (UCF101 split 1, ESC-50 fold 3 held out, ...)."""

    name: str
    train: tuple[LabelledMedia, ...]
    test: tuple[LabelledMedia, ...]


@dataclass(frozen=True)
class LabelledDataset:
    name: str  # "ucf101", "hmdb51", "esc50", "dcase"
    root: Path
    classes: tuple[str, ...]
    splits: tuple[Split, ...]

    def class_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _media(root: Path, rel: str, label: str, group: str, where: str) -> LabelledMedia:
    path = root / rel
    if not path.is_file():
        raise DataError(f"{where}: {path} does not exist")
    wav = path.with_suffix(".wav")
    return LabelledMedia(path=path, label=label, group=group,
                         audio_path=wav if wav != path and wav.is_file() else None)


def _check_disjoint(name: str, train: list[LabelledMedia], test: list[LabelledMedia], where: str) -> None:
    both = sorted({m.path for m in train} & {m.path for m in test})
    if both:
        raise DataError(f"{where}: {len(both)} file(s) are in both the training and the test list, e.g. {both[0]}")


# -- UCF101 -------------------------------------------------------------------------------------------

_UCF_GROUP = re.compile(r"_g(\d+)_c\d+$")
_SPLIT_FILE = re.compile(r"^trainlist(\d+)\.txt$")


def _numbered_split_files(folder: Path, pattern: re.Pattern, wanted: list[int] | None, names: tuple[str, str], *,
                          none_found: str, missing_hint: str = "") -> list[tuple[int, Path, Path]]:
    """(k, train file, test file) for every numbered split in ``wanted``, or for every one whose training
    file (``pattern``, the number in its group 1) is in ``folder`` when ``wanted`` is None or empty.
    ``names`` are the two file names with ``{k}`` for the number; a missing file is an error naming it."""
    present = sorted(int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name)))
    ids = list(wanted) if wanted else present
    if not ids:
        raise DataError(f"{folder}: {none_found}")
    found = []
    for k in ids:
        train_file, test_file = (folder / name.format(k=k) for name in names)
        for f in (train_file, test_file):
            if not f.is_file():
                raise DataError(f"{f}: split file missing{missing_hint.format(k=k)}")
        found.append((k, train_file, test_file))
    return found


def _ucf_splits_dir(root: Path, splits_dir: str | Path | None) -> Path:
    if splits_dir:
        return Path(splits_dir)
    official = root / "ucfTrainTestlist"
    return official if official.is_dir() else root


def read_ucf101(root: str | Path, splits_dir: str | Path | None = None,
                split_ids: list[int] | None = None) -> LabelledDataset:
    """UCF101 layout (see the module docstring); ``split_ids`` None or empty: every trainlist0N present."""
    root = Path(root)
    sdir = _ucf_splits_dir(root, splits_dir)
    class_file = sdir / "classInd.txt"
    if not class_file.is_file():
        raise DataError(f"{class_file}: missing (UCF101 layout needs classInd.txt beside the split lists)")
    classes: dict[str, int] = {}
    for n, line in _lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{class_file}:{n}: expected '<index> <Class>', got {line!r}")
        if parts[1] in classes or int(parts[0]) in classes.values():
            raise DataError(f"{class_file}:{n}: class {parts[1]!r} or index {parts[0]} listed twice")
        classes[parts[1]] = int(parts[0])
    if not classes:
        raise DataError(f"{class_file}: no classes")
    splits = []
    for k, train_file, test_file in _numbered_split_files(
            sdir, _SPLIT_FILE, split_ids, ("trainlist{k:02d}.txt", "testlist{k:02d}.txt"),
            none_found="no trainlist0N.txt split files",
            missing_hint=" (split {k} was asked for or its trainlist exists)"):
        train = _read_ucf_list(root, train_file, classes, labelled=True)
        test = _read_ucf_list(root, test_file, classes, labelled=False)
        _check_disjoint("ucf101", train, test, f"{train_file} / {test_file}")
        splits.append(Split(name=f"split{k}", train=tuple(train), test=tuple(test)))
    ordered = tuple(sorted(classes, key=classes.__getitem__))
    return LabelledDataset(name="ucf101", root=root, classes=ordered, splits=tuple(splits))


def _read_ucf_list(root: Path, path: Path, classes: dict[str, int], *, labelled: bool) -> list[LabelledMedia]:
    items = []
    for n, line in _lines(path):
        parts = line.split()
        rel = parts[0]
        cls = rel.replace("\\", "/").split("/")[0]
        where = f"{path}:{n}"
        if "/" not in rel.replace("\\", "/") or len(parts) > 2:
            raise DataError(f"{where}: expected '<Class>/<video>{' <index>' if labelled else ''}', got {line!r}")
        if cls not in classes:
            raise DataError(f"{where}: unknown class {cls!r} (not in classInd.txt)")
        if labelled and len(parts) != 2:
            raise DataError(f"{where}: training lines need the class index after the file name")
        if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) != classes[cls]):
            raise DataError(f"{where}: class index {parts[1]!r} does not match {cls!r} = {classes[cls]} in classInd.txt")
        stem = Path(rel).stem
        match = _UCF_GROUP.search(stem)
        group = f"{cls}/g{match.group(1)}" if match else f"{cls}/{stem}"
        items.append(_media(root, rel, cls, group, where))
    if not items:
        raise DataError(f"{path}: empty split list")
    return items


# -- HMDB51 -------------------------------------------------------------------------------------------

_HMDB_FILE = re.compile(r"^(.+)_test_split(\d+)\.txt$")


def read_hmdb51(root: str | Path, splits_dir: str | Path | None = None,
                split_ids: list[int] | None = None) -> LabelledDataset:
    """HMDB51 layout (see the module docstring); every class needs a file for every split used."""
    root = Path(root)
    sdir = Path(splits_dir) if splits_dir else root / "testTrainMulti_7030_splits"
    if not sdir.is_dir():
        raise DataError(f"{sdir}: HMDB51 split folder missing")
    files: dict[tuple[str, int], Path] = {}
    for p in sdir.iterdir():
        if m := _HMDB_FILE.match(p.name):
            files[(m.group(1), int(m.group(2)))] = p
    if not files:
        raise DataError(f"{sdir}: no <class>_test_split<N>.txt files")
    classes = tuple(sorted({c for c, _ in files}))
    wanted = list(split_ids) if split_ids else sorted({k for _, k in files})
    splits = []
    for k in wanted:
        train: list[LabelledMedia] = []
        test: list[LabelledMedia] = []
        for cls in classes:
            path = files.get((cls, k))
            if path is None:
                raise DataError(f"{sdir / f'{cls}_test_split{k}.txt'}: split file missing (class {cls!r}, split {k})")
            if not (root / cls).is_dir():
                raise DataError(f"{path}: unknown class {cls!r}: no folder {root / cls}")
            for n, line in _lines(path):
                parts = line.split()
                where = f"{path}:{n}"
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise DataError(f"{where}: expected '<video> <0|1|2>' (1 train, 2 test, 0 unused), got {line!r}")
                if parts[1] == "0":
                    continue
                item = _media(root, f"{cls}/{parts[0]}", cls, f"{cls}/{Path(parts[0]).stem}", where)
                (train if parts[1] == "1" else test).append(item)
        if not train or not test:
            raise DataError(f"{sdir}: split {k} has {len(train)} training and {len(test)} test videos")
        _check_disjoint("hmdb51", train, test, f"{sdir} split {k}")
        splits.append(Split(name=f"split{k}", train=tuple(train), test=tuple(test)))
    return LabelledDataset(name="hmdb51", root=root, classes=classes, splits=tuple(splits))


# -- ESC-50 -------------------------------------------------------------------------------------------

ESC50_COLUMNS = ("filename", "fold", "target", "category")


def read_esc50(root: str | Path, folds: list[int] | None = None) -> LabelledDataset:
    """ESC-50 layout; one split per held-out fold (``folds`` None or empty: every fold in the CSV).
    ``group`` is the fold, which the probe's cross-validation holds out one at a time."""
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise DataError(f"{meta}: missing (ESC-50 layout needs meta/esc50.csv)")
    with meta.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ESC50_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{meta}:1: missing column(s) {missing}")
        rows = list(reader)
    if not rows:
        raise DataError(f"{meta}: no rows")
    target_of: dict[str, int] = {}
    by_fold: dict[int, list[LabelledMedia]] = {}
    for n, row in enumerate(rows, 2):  # line 1 is the header
        where = f"{meta}:{n}"
        fold, target, category = row["fold"].strip(), row["target"].strip(), row["category"].strip()
        if not fold.isdigit() or not target.isdigit() or not category:
            raise DataError(f"{where}: fold and target must be whole numbers and category non-empty, got "
                            f"fold={fold!r} target={target!r} category={category!r}")
        if target_of.setdefault(category, int(target)) != int(target) or \
                list(target_of.values()).count(int(target)) > 1:
            raise DataError(f"{where}: category {category!r} with target {target} contradicts earlier rows")
        item = _media(root / "audio", row["filename"].strip(), category, f"fold{fold}", where)
        by_fold.setdefault(int(fold), []).append(item)
    wanted = list(folds) if folds else sorted(by_fold)
    for k in wanted:
        if k not in by_fold:
            raise DataError(f"{meta}: fold {k} asked for, the CSV has folds {sorted(by_fold)}")
    if len(by_fold) < 2:
        raise DataError(f"{meta}: a fold-wise evaluation needs at least 2 folds, found {sorted(by_fold)}")
    splits = tuple(Split(name=f"fold{k}", train=tuple(m for f in sorted(by_fold) if f != k for m in by_fold[f]),
                         test=tuple(by_fold[k])) for k in wanted)
    classes = tuple(sorted(target_of, key=target_of.__getitem__))
    return LabelledDataset(name="esc50", root=root, classes=classes, splits=splits)


# -- DCASE --------------------------------------------------------------------------------------------

_DCASE_FILE = re.compile(r"^fold(\d+)_train\.txt$")


def read_dcase(root: str | Path, folds: list[int] | None = None) -> LabelledDataset:
    """DCASE scene-classification layout (see the module docstring); each file's ``group`` is itself."""
    root = Path(root)
    setup = root / "evaluation_setup"
    if not setup.is_dir():
        raise DataError(f"{setup}: missing (DCASE layout needs evaluation_setup/fold<N>_train.txt)")
    classes: set[str] = set()
    splits = []
    for k, train_file, test_file in _numbered_split_files(
            setup, _DCASE_FILE, folds, ("fold{k}_train.txt", "fold{k}_evaluate.txt"),
            none_found="no fold<N>_train.txt files"):
        train = _read_dcase_list(root, train_file, None)
        known = {m.label for m in train}
        test = _read_dcase_list(root, test_file, known)
        _check_disjoint("dcase", train, test, f"{train_file} / {test_file}")
        classes |= known
        splits.append(Split(name=f"fold{k}", train=tuple(train), test=tuple(test)))
    return LabelledDataset(name="dcase", root=root, classes=tuple(sorted(classes)), splits=tuple(splits))


def _read_dcase_list(root: Path, path: Path, known: set[str] | None) -> list[LabelledMedia]:
    items = []
    for n, line in _lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts if p.strip()]
        where = f"{path}:{n}"
        if len(parts) < 2:
            raise DataError(f"{where}: expected '<audio file><TAB><label>', got {line!r}")
        rel, label = parts[0], parts[1]
        if known is not None and label not in known:
            raise DataError(f"{where}: unknown class {label!r} (not in the fold's training list)")
        items.append(_media(root, rel, label, rel, where))
    if not items:
        raise DataError(f"{path}: empty list")
    return items


VIDEO_READERS = {"ucf101": read_ucf101, "hmdb51": read_hmdb51}
AUDIO_READERS = {"esc50": read_esc50, "dcase": read_dcase}
