"""Does a method's pretext learn, and at what budget? One pretraining per budget, each measured three ways.

    .venv/bin/python benchmarks/learning_curve.py --method avts --vary pretrain.pairs_per_clip --values 1 3 10 \\
        --set 'pretrain.hparams={avts: {lr: 0.003}}' --label lr3e-3 --json curve.jsonl   # from a project root

For each of ``--values`` it sets ``--vary`` (default ``pretrain.train.epochs``) and runs the pretrain stage
(``run_pretrain``: params.yaml and ``--set`` apply)
into its own folder, ``<out-dir>/<label>-<method>-<last part of the key>=<value>``, and reports:
  - the CPU seconds and wall seconds of that pretraining (this process: training plus its held-out
    measurement);
  - the training loss and the validation accuracy of every epoch (the run's metrics.jsonl);
  - held-out pretext accuracy, as ``metrics/pretrain_<method>.json`` records it (pairs from
    ``pretrain.val_split``), and the same measure on pairs drawn the same way from ``pretrain.train_split``
    (evaluation transforms): a model that scores high on its training videos and at chance on held-out
    videos has fitted those videos, not the pretext;
  - for the pair classifiers with a shared space (AVTS, AVC), the ROC AUC of the negated audio-video
    distance on both sets of pairs: it needs no threshold, so it tells "nothing learnt" (0.5) from "learnt,
    but the threshold calibrated on training distances does not fit new videos"; and the same AUC on held-out
    pairs whose negatives all come from the positive's own video (``heldout_auc_hard``): same look, same
    voice, so above 0.5 only through synchronization, where the easy pairs can also be told apart by which
    look goes with which sound.
A finished run is reused (the pretrain stage's own rule), so rerunning adds only the missing budgets.
Each point is printed as one markdown table row and, with ``--json``, appended as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import roc_auc_score

from avssl_core.config import load_config
from avssl_core.methods.protocols import PROTOCOLS, held_out_pairs, measure_pretext, per_process_batch_size
from avssl_core.methods.saved import load_model
from avssl_core.pretext.dataset import FAILED_KEY, collate_skipping_failures
from avssl_core.pretext.spec import NegativeMix
from avssl_core.stages.pretrain import run_pretrain

COLUMNS = ("label", "method", "vary", "value", "steps", "cpu_s", "wall_s", "loss_first", "loss_last",
           "val_acc_per_epoch", "heldout", "train_pairs", "heldout_auc", "train_pairs_auc", "heldout_auc_hard")
# Negatives from the same video only, at least hard_negative_gap_s away: the same look and voice as the positive,
# so only timing (what moves when it sounds) can tell them apart.
SYNC_ONLY = NegativeMix(easy=0.0, hard=1.0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@torch.no_grad()
def distance_auc(cfg, method, mix: NegativeMix = PROTOCOLS["easy"]) -> float | None:
    """ROC AUC of -||video - audio|| over held-out pairs of ``cfg.pretrain.val_split`` with negatives of ``mix``;
    None for a method without a shared space or with pairs of one label only (a contrastive method's are all
    positive)."""
    if not method.has_shared_space():
        return None
    method.eval()
    loader = torch.utils.data.DataLoader(held_out_pairs(cfg, method, mix),
                                         batch_size=per_process_batch_size(cfg, method),
                                         collate_fn=collate_skipping_failures)
    labels, scores = [], []
    for batch in loader:
        batch.pop(FAILED_KEY, None)  # a failed pair is left out of the batch (and the AUC)
        batch = method.device_transform(batch)
        dist = torch.linalg.vector_norm(method.embed_video(batch) - method.embed_audio(batch), dim=1)
        labels += batch["label"].reshape(-1).tolist()
        scores += (-dist).tolist()
    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else None


def epoch_records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") == "epoch"]


def one_point(args, value: str) -> dict[str, Any]:
    out = Path(args.out_dir) / f"{args.label}-{args.method}-{args.vary.rsplit('.', 1)[-1]}={value}"
    overrides = [*args.overrides, f"pretrain.out_dir={out}", f"paths.metrics_dir={out}",
                 f"{args.vary}={value}", "pretrain.train.progress=false"]
    cfg = load_config(args.params, overrides)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    metrics = run_pretrain(cfg, args.method)
    cpu_s, wall_s = cpu_seconds() - cpu0, time.perf_counter() - wall0
    epochs_log = epoch_records(Path(metrics["run_dir"]))
    # The trained model as the stage saved it, measured on training-split pairs drawn as the held-out ones are.
    method = load_model(Path(cfg.pretrain.out_dir) / args.method / "model.pt", args.method)
    train_cfg = load_config(args.params, [*overrides, f"pretrain.val_split={cfg.pretrain.train_split}"])
    on_train = measure_pretext(train_cfg, method)["pretext_accuracy"]
    return {
        "label": args.label, "method": args.method, "vary": args.vary, "value": value,
        "epochs": metrics["epochs"], "steps": metrics["steps"],
        "cpu_s": round(cpu_s, 1), "wall_s": round(wall_s, 1),
        # A run that max_steps stops mid-epoch has no epoch record: no epoch losses to report.
        "loss_first": _round(epochs_log[0]["train_loss"] if epochs_log else None),
        "loss_last": _round(epochs_log[-1]["train_loss"] if epochs_log else None),
        "val_acc_per_epoch": [None if r.get("val_accuracy") is None else round(r["val_accuracy"], 3)
                              for r in epochs_log],
        "heldout": {p: round(a, 3) for p, a in metrics["pretext_accuracy"].items()},
        "chance": metrics["protocol"]["chance"],
        "train_pairs": {p: round(a, 3) for p, a in on_train.items()},
        "heldout_auc": _round(distance_auc(cfg, method)),
        "train_pairs_auc": _round(distance_auc(train_cfg, method)),
        "heldout_auc_hard": _round(distance_auc(cfg, method, SYNC_ONLY)),
        "overrides": args.overrides,
        "run_dir": metrics["run_dir"],
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--method", required=True, help="avts | avc | coattention | cmac (any registered method)")
    parser.add_argument("--vary", default="pretrain.train.epochs",
                        help="the parameter that sets the budget (default pretrain.train.epochs; "
                             "pretrain.pairs_per_clip scales the steps and keeps the preset's epoch schedule)")
    parser.add_argument("--values", nargs="+", required=True, help="its value at each point")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a parameter for every point (repeatable), as avssl --set")
    parser.add_argument("--label", default="run", help="names the points' folders and rows")
    parser.add_argument("--out-dir", default="data/learning_curve", help="where each point's run lives")
    parser.add_argument("--json", default=None, help="append one JSON line per point to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before training")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| " + " | ".join(COLUMNS) + " |", flush=True)
    for value in args.values:
        row = one_point(args, value)
        print("| " + " | ".join(str(row[c]) for c in COLUMNS) + " |", flush=True)
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
