"""Checkpoint files: atomic writes, a ``latest`` pointer, pruning, weights-only loads, identity checks.

Layout under a run's output folder::

    checkpoints/step_000123.pt   one per saved optimizer step (the newest ``keep`` are kept)
    checkpoints/latest.json      {"checkpoint": "step_000123.pt", "global_step": 123, ...}

A checkpoint file is written to a temporary name and renamed into place, then the pointer is rewritten
the same way, so a run killed at any instant leaves either the previous or the new checkpoint, never a
torn one. Contents are plain containers of tensors and numbers (see ``trainer._checkpoint_state``) and
are loaded with ``weights_only=True``: a checkpoint can hold no code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from avssl_core.errors import AvsslError
from avssl_core.io_utils import atomic_path, write_json_atomic

CHECKPOINT_DIRNAME = "checkpoints"
LATEST_POINTER = "latest.json"
FORMAT_VERSION = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointMismatchError(AvsslError):
    """A checkpoint in the output folder belongs to another method, preset or set of hyper-parameters."""


class CheckpointReadError(AvsslError):
    """A checkpoint file cannot be read (truncated, not a checkpoint, written by an incompatible format)."""


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHECKPOINT_DIRNAME


def checkpoint_path(out_dir: str | Path, global_step: int) -> Path:
    return checkpoint_dir(out_dir) / f"step_{global_step:06d}.pt"


def save_checkpoint(out_dir: str | Path, state: dict[str, Any], *, global_step: int, keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``global_step``, point ``latest`` at it, prune old ones.

    ``keep`` <= 0 keeps every checkpoint.
    """
    path = checkpoint_path(out_dir, global_step)
    with atomic_path(path) as tmp:
        torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    position = state.get("position", {})
    write_json_atomic(checkpoint_dir(out_dir) / LATEST_POINTER, {
        "checkpoint": path.name,
        "global_step": global_step,
        "epoch": position.get("epoch"),
        "batches_consumed": position.get("batches_consumed"),
        "signature": state.get("signature"),
    })
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            if old != path:
                old.unlink(missing_ok=True)
    return path


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Checkpoint files in step order."""
    folder = checkpoint_dir(out_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint ``latest.json`` names; without a pointer (a run killed between writing its first
    checkpoint and its pointer) the highest-numbered file."""
    pointer = checkpoint_dir(out_dir) / LATEST_POINTER
    if pointer.is_file():
        try:
            name = json.loads(pointer.read_text())["checkpoint"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointReadError(f"{pointer}: not a valid checkpoint pointer ({exc}); delete it to "
                                      "resume from the newest step_*.pt") from exc
        path = pointer.parent / name
        if not path.is_file():
            raise CheckpointReadError(f"{pointer} names {name}, which does not exist")
        return path
    files = list_checkpoints(out_dir)
    return files[-1] if files else None


def remove_partial_writes(out_dir: str | Path) -> None:
    """Delete temporary files a killed save left behind (``.step_000123.*.part.pt``)."""
    folder = checkpoint_dir(out_dir)
    if folder.is_dir():
        for tmp in folder.glob(".*.part*"):
            tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types (pickle, zip, weights-only refusals)
        raise CheckpointReadError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else type(state).__name__
        raise CheckpointReadError(f"{path}: checkpoint format {found!r}, this trainer reads {FORMAT_VERSION}")
    return state


def check_signature(path: str | Path, stored: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse to resume a run of one method/preset/hyper-parameters from another's checkpoint."""
    if stored == current:
        return

    def describe(sig: dict[str, Any]) -> str:
        return (f"method {sig.get('method')!r}, preset {sig.get('preset')!r}, "
                f"hyper-parameters {sig.get('hparams_hash')}")

    if stored.get("method") != current.get("method"):
        what = "another method"
    elif stored.get("preset") != current.get("preset"):
        what = "another preset"
    else:
        what = "other hyper-parameters"
    raise CheckpointMismatchError(
        f"{path} was written by {what}: {describe(stored)}; this run is {describe(current)}. "
        "Refusing to resume from it: use another output folder, or delete the checkpoints folder to "
        "start over."
    )
