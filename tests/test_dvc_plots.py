"""dvc.yaml's plots are the pretrain stage's own: every method in pretrain.methods gets its loss and held-out
accuracy curves, and no other method's, with no list of methods written into dvc.yaml. Real DVC on the
project's dvc.yaml, with the curves a pretrain run publishes beside model.pt."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DVC = Path(sys.executable).with_name("dvc")


@pytest.mark.timeout(180)
def test_plots_follow_pretrain_methods(tmp_path):
    subprocess.run([str(DVC), "init", "-q", "--no-scm"], cwd=tmp_path, check=True, capture_output=True)
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["pretrain"]["methods"] = ["cmac", "avc"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for k, method in enumerate(("cmac", "avc", "avts")):  # avts is not in pretrain.methods: not plotted
        plots = tmp_path / "data" / "pretrain" / method / "plots"
        plots.mkdir(parents=True)
        (plots / "loss.csv").write_text(f"step,loss\n10,{2 + k}.5\n20,{1 + k}.25\n")
        (plots / "val_accuracy.csv").write_text(f"epoch,val_accuracy\n0,0.{5 + k}\n")

    out = subprocess.run([str(DVC), "plots", "show", "--json"], cwd=tmp_path, check=True, capture_output=True,
                         text=True, timeout=150).stdout
    shown = json.loads(out)["data"]
    assert sorted(shown) == [f"data/pretrain/{m}/plots/{f}.csv" for m in ("avc", "cmac")
                             for f in ("loss", "val_accuracy")]
    loss = shown["data/pretrain/avc/plots/loss.csv"][0]["content"]
    assert loss["title"]["text"] == "avc: pretraining loss"
    assert [(float(p["step"]), float(p["loss"])) for p in loss["data"]["values"]] == [(10, 3.5), (20, 2.25)]
    accuracy = shown["data/pretrain/cmac/plots/val_accuracy.csv"][0]["content"]
    assert accuracy["title"]["text"] == "cmac: pretext accuracy on held-out pairs"
    assert [(int(p["epoch"]), float(p["val_accuracy"])) for p in accuracy["data"]["values"]] == [(0, 0.5)]
