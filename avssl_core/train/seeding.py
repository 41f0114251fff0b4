"""Seeds and random-number-generator state, kept in a form ``torch.load(weights_only=True)`` accepts.

Exact resume needs every generator that training draws from restored to where it was at the
checkpoint: python ``random``, numpy's global generator, torch's CPU generator (dropout on CPU, random
crops in the main process) and every CUDA device's generator. Their native states hold tuples and
numpy arrays, which a weights-only load refuses, so they are stored as tensors and plain numbers.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from several integers (seed, epoch, rank, ...): nearby inputs such as
    (seed, epoch) and (seed, epoch + 1) give unrelated streams, unlike ``seed + epoch``."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
        "torch": torch.get_rng_state(),
        # Only when CUDA is in use: querying it would otherwise create a context on every GPU.
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].cpu().tolist()), py["gauss_next"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].cpu().numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state["cuda"]
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) != torch.cuda.device_count():
            raise RuntimeError(f"checkpoint holds RNG states of {len(cuda_states)} CUDA devices, "
                               f"this machine has {torch.cuda.device_count()}")
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


def loader_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The generator a DataLoader draws its workers' base seed from.

    Passing one also keeps the DataLoader from drawing that seed from torch's global generator, which
    would shift every later dropout mask by one draw per epoch.
    """
    return torch.Generator().manual_seed(derive_seed(seed, epoch, rank))


def seed_dataloader_worker(worker_id: int) -> None:
    """worker_init_fn: torch already seeds each worker with base_seed + worker_id (base_seed from
    :func:`loader_generator`, so from (seed, epoch, rank)); give python and numpy the same seed."""
    worker_seed = torch.initial_seed()
    random.seed(worker_seed)
    np.random.seed(worker_seed % 2**32)
