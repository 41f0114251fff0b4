"""model.pt, the pretrain stage's published model: written by ``save_model``, read back by ``load_model``
(the evaluate stage, the retrain flow's current best, an ablation trial).

Format (torch.save of a dict, read with ``weights_only=True``): {"signature": PretrainMethod.signature(),
"hparams": the method's hyper-parameters, "state_dict": its weights and buffers (normalisation statistics
included)}. The method is rebuilt from the signature's name and preset with the saved hyper-parameters.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

from avssl_core.errors import DataError
from avssl_core.io_utils import atomic_path
from avssl_core.methods.base import PretrainMethod
from avssl_core.methods.registry import build_method


def model_sha256(path: str | Path) -> str | None:
    """The file's sha256, None when there is no such file."""
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def save_model(method: PretrainMethod, model_path: str | Path) -> str:
    """Write model.pt (atomically); returns its sha256."""
    # Through a file object: given a path, torch.save names the archive inside after the file, and the
    # temporary file's random name would make equal weights give different bytes (and sha256).
    with atomic_path(model_path) as tmp, open(tmp, "wb") as out:
        torch.save({"signature": method.signature(), "hparams": method.hparams,
                    "state_dict": method.state_dict()}, out)
    return model_sha256(model_path) or ""


def load_model(model_path: str | Path, method: str | None = None) -> PretrainMethod:
    """The method saved in ``model_path``, with its weights, on the CPU. ``method``: the method it must hold.

    Raises DataError naming the file when it is missing, unreadable, not a model.pt, or holds another method.
    """
    path = Path(model_path)
    if not path.is_file():
        hint = f"; run `avssl pretrain --method {method}` first" if method else ""
        raise DataError(f"{path}: no pretrained model{hint}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise DataError(f"{path}: unreadable model file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in ("signature", "hparams", "state_dict")
               if not isinstance(saved, dict) or not isinstance(saved.get(k), dict)]
    if missing:
        raise DataError(f"{path}: not a pretrained model (no {', '.join(missing)}); expected the pretrain "
                        "stage's model.pt")
    signature = saved["signature"]
    if method is not None and signature.get("method") != method:
        raise DataError(f"{path}: holds a {signature.get('method')!r} model, not {method!r}")
    try:
        model = build_method(signature["method"], signature["preset"], **saved["hparams"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: its weights do not load into {signature.get('method')!r} "
                        f"({type(exc).__name__}: {exc})") from exc
    return model
