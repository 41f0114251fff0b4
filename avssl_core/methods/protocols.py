"""The pretraining protocol the stages share: the held-out pairs a pretrained method is measured on, the fixed
negative mixes (protocols) it is measured under, and the measurement itself with its chance level.

The pretrain stage measures a new model with ``measure_pretext``, an ablation trial scores an unmeasured
protocol with it, and the evaluate stage draws its pretext pairs with ``fixed_mix`` and
``VAL_SEED_OFFSET``. Which protocols a method is measured under is the method's own declaration
(``PretrainMethod.pretext_protocols``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from avssl_core.config import Config
from avssl_core.data.frame_store import configured_frames_dir
from avssl_core.errors import ConfigError
from avssl_core.eval.pretext import evaluate_pretext
from avssl_core.methods.base import PretrainMethod
from avssl_core.pretext.clip_index import ClipIndex
from avssl_core.pretext.dataset import PairDataset
from avssl_core.pretext.sampling import PairSampler
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec

# Held-out pairs use their own seed stream, so they never coincide with training draws.
VAL_SEED_OFFSET = 1_000_003
# Pretext protocols (fixed negative mixes) for held-out accuracy. "easy" is the AVTS paper's Table 1
# test set (negatives from other videos only); "easy75_hard25" its curriculum mix; "shifted" the
# co-attention paper's negatives (audio shifted 2.0-5.8 s within the same video).
PROTOCOLS = {
    "easy": NegativeMix(easy=1.0),
    "easy75_hard25": NegativeMix(easy=0.75, hard=0.25),
    "shifted": NegativeMix(easy=0.0, shifted=1.0),
}
# Chance of a pair classifier, whose method reports none of its own: half of its held-out pairs are positive.
PAIR_CHANCE = 0.5


def fixed_mix(spec: PairSpec, mix: NegativeMix) -> PairSpec:
    return dataclasses.replace(spec, curriculum=(CurriculumStage(0, mix),))


def held_out_pairs(cfg: Config, method: PretrainMethod, mix: NegativeMix) -> PairDataset:
    """Fixed, seeded pairs from the validation split under one negative mix."""
    pc = cfg.pretrain
    index = ClipIndex.from_csv(Path(cfg.paths.clips_dir) / "index.csv", splits=pc.val_split)
    sampler = PairSampler(index, fixed_mix(method.pair_spec(), mix), pc.train.seed + VAL_SEED_OFFSET,
                          samples_per_epoch=pc.val_pairs)
    # The host half only: the trainer (or evaluate_pretext) runs the device half, method.device_transform.
    return PairDataset(sampler, preprocess=method.preprocess(train=False).host,
                       frame_store=configured_frames_dir(cfg, pc.val_split))


def per_process_batch_size(cfg: Config, method: PretrainMethod) -> int:
    """The per-process batch the pretrain stage trains and measures with: pretrain.train.batch_size, or the
    preset's. A contrastive method's held-out accuracy and chance depend on it (its candidates are the batch)."""
    return cfg.pretrain.train.batch_size or int(method.hparams["batch_size"])


def measure_pretext(cfg: Config, method: PretrainMethod, protocols: Sequence[str] | None = None, *,
                    device: str | torch.device | None = None, per_pair: bool = False) -> dict[str, Any]:
    """Held-out pretext accuracy of ``method`` under each of ``protocols`` (default: the method's own), as
    the pretrain stage's metrics record it: {"protocol": {split, pairs, positive_fraction, chance},
    "pretext_accuracy": {protocol: accuracy}, "pretext_accuracy_by_kind": {protocol: {kind: accuracy}}}.

    ``per_pair``: also "pretext_pairs": {protocol: evaluate_pretext's per-pair record}.

    Runs on ``device`` (default: where the method's weights are). Contrastive methods (CMAC) score instance
    discrimination among a batch of positives: their chance is measured per query (1 / candidates; clips of
    the query's own video are not), and their held-out pairs are all positives. Pair classifiers: half the
    pairs are positive, chance 0.5.
    """
    names = tuple(method.pretext_protocols if protocols is None else protocols)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ConfigError(f"{method.name}: pretext protocols {list(names)}; each must be one of {sorted(PROTOCOLS)}")
    device = next(method.parameters()).device if device is None else device
    results = {p: evaluate_pretext(method, held_out_pairs(cfg, method, PROTOCOLS[p]),
                                   batch_size=per_process_batch_size(cfg, method), device=device,
                                   per_pair=per_pair)
               for p in names}
    pc = cfg.pretrain
    return {
        "protocol": {"split": pc.val_split, "pairs": pc.val_pairs,
                     "positive_fraction": method.pair_spec().positive_fraction,
                     "chance": results[names[0]]["chance"] or PAIR_CHANCE},
        "pretext_accuracy": {p: r["accuracy"] for p, r in results.items()},
        "pretext_accuracy_by_kind": {p: r["accuracy_by_kind"] for p, r in results.items()},
        **({"pretext_pairs": {p: r["per_pair"] for p, r in results.items()}} if per_pair else {}),
    }
