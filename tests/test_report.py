"""The leaderboard report (Markdown + static HTML with its pictures) and the t-SNE pictures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from avssl_core.cli import main
from avssl_core.config import load_config
from avssl_core.errors import DataError
from avssl_core.eval.embedding_plot import embed_2d, plot_embeddings, tsne_perplexity
from avssl_core.eval.report import build_report, fmt
from avssl_core.stages.report import run_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- t-SNE -------------------------------------------------------------------------------------------


def _clusters(per_class: int = 6, classes: int = 3, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (classes, dim))
    features = np.concatenate([c + rng.normal(0, 0.5, (per_class, dim)) for c in centres])
    labels = [f"class{k}" for k in range(classes) for _ in range(per_class)]
    return features, labels


def test_plot_embeddings_writes_a_png_and_is_deterministic(tmp_path):
    features, labels = _clusters()
    out = plot_embeddings(features, labels, tmp_path / "tsne.png", "audio embeddings")
    assert out == tmp_path / "tsne.png" and out.read_bytes()[:8] == PNG_MAGIC
    first, second = embed_2d(features), embed_2d(features)
    assert np.array_equal(first, second)
    # Well separated classes stay separated: every point's nearest neighbour is of its own class.
    d = np.linalg.norm(first[:, None] - first[None], axis=-1) + np.eye(len(first)) * 1e9
    assert all(labels[i] == labels[j] for i, j in enumerate(d.argmin(axis=1)))


def test_perplexity_adapts_to_small_sets_and_bad_input_is_refused(tmp_path):
    assert tsne_perplexity(1000) == 30.0 and tsne_perplexity(16) == 5.0 and tsne_perplexity(5) == 2.0
    with pytest.raises(ValueError, match="N >= 5"):
        plot_embeddings(np.zeros((3, 4)), ["a", "b", "c"], tmp_path / "x.png", "too few")
    with pytest.raises(ValueError, match="labels"):
        plot_embeddings(np.zeros((8, 4)), ["a"] * 7, tmp_path / "x.png", "mismatch")


# -- the report --------------------------------------------------------------------------------------


def _evaluation(method: str, preset: str, pictures: dict, overlays: list, offset: float) -> dict:
    return {
        "method": method, "preset": preset, "data": f"data/clips/index.csv [test] ({method})", "seconds": 123.4,
        "tasks": {
            "frozen_video": {"dataset": "synthetic test videos", "protocol": "frozen video encoder, kNN and linear",
                             "pretrained": {"knn_all": 0.75 + offset, "linear_all": 0.625},
                             "scratch": {"knn_all": 0.375, "linear_all": 0.5625},
                             "trivial": {"knn_all": 0.4375, "linear_all": 0.5},
                             "intervals": {
                                 "knn_all": {"pretrained": {"value": 0.75 + offset, "low": 0.5417, "high": 0.9167},
                                             "scratch": {"value": 0.375, "low": 0.1667, "high": 0.5833},
                                             "difference": {"value": 0.375 + offset, "low": 0.1250, "high": 0.6250},
                                             "verdict": "win", "test_groups": 8, "test_items": 24,
                                             "bootstrap": "95% percentile, 1000 replicates"},
                                 "linear_all": {"pretrained": {"value": 0.625, "low": 0.4167, "high": 0.8333},
                                                "scratch": {"value": 0.5625, "low": 0.3333, "high": 0.7917},
                                                "difference": {"value": 0.0625, "low": -0.1667, "high": 0.2917},
                                                "trivial": {"value": 0.5, "low": 0.25, "high": 0.75},
                                                "verdict": "not separable", "test_groups": 8, "test_items": 24,
                                                "bootstrap": "95% percentile, 1000 replicates"}},
                             "skipped": 0},
            "pretext_easy": {"dataset": "data/clips/index.csv [test]", "protocol": "128 fixed pairs, half positive",
                             "pretrained": {"accuracy": 0.6173 + offset}, "scratch": {"accuracy": 0.4961 + offset},
                             "skipped": 0},
            "retrieval_video": {"dataset": "synthetic test videos", "protocol": "10 clips/video, cosine",
                                "pretrained": {"R@1": 0.2841 + offset, "R@5": 0.5379 + offset, "R@10": 0.7113,
                                               "median_rank": 37.5 + offset},
                                "scratch": {"R@1": 0.1203, "R@5": 0.3317, "R@10": 0.4409, "median_rank": 61.0},
                                "skipped": 2},
            "localization": {"dataset": "data/clips/index.csv [test]", "protocol": f"{method} localisation protocol",
                             "pretrained": {"cIoU@0.5": 0.1429 + offset, "AUC": 0.2718 + offset},
                             "scratch": {"cIoU@0.5": 0.0357, "AUC": 0.1646},
                             "centre_prior": {"cIoU@0.5": 0.0213, "AUC": 0.1177},
                             "single_source": {"samples": 30, "pretrained": {"cIoU@0.5": 0.1931, "AUC": 0.3012},
                                               "centre_prior": {"cIoU@0.5": 0.0, "AUC": 0.0817}},
                             "multi_source": {"samples": 18, "pretrained": {"cIoU@0.5": 0.0556, "AUC": 0.2222},
                                              "centre_prior": {"cIoU@0.5": 0.0, "AUC": 0.1778}},
                             "samples": 48, "skipped": 1, "overlays": overlays},
        },
        "pictures": pictures,
    }


def _numbers(obj):
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key not in ("seconds",):
                yield from _numbers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _numbers(value)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


@pytest.fixture
def report_inputs(tmp_path):
    metrics = tmp_path / "metrics"
    pictures = tmp_path / "data" / "evaluate"
    metrics.mkdir()
    tsne = _png(pictures / "avts" / "tsne_audio.png")
    overlay = _png(pictures / "avts" / "localization_x_f0010.png")
    avc_tsne = _png(pictures / "avc" / "tsne_audio.png")
    avts = _evaluation("avts", "tiny", {"tsne_audio": str(tsne)}, [str(overlay)], 0.0)
    # A relative picture path resolves against the project (here: the metrics folder's parent).
    avc = _evaluation("avc", "paper", {"tsne_audio": str(avc_tsne.relative_to(tmp_path)),
                                       "tsne_video": "data/evaluate/avc/never_written.png"}, [], 0.1)
    (metrics / "avts.json").write_text(json.dumps(avts))
    (metrics / "avc.json").write_text(json.dumps(avc))
    (metrics / "acquire.json").write_text(json.dumps({"files": 48}))  # a stage metric, not an evaluation
    (metrics / "pretrain_avts.json").write_text(json.dumps({
        "method": "avts", "preset": "tiny", "data": "data/clips/index.csv",
        "protocol": {"split": "val", "pairs": 256}, "pretext_accuracy": {"easy": 0.8047, "easy75_hard25": 0.7266},
        "epochs": 12, "steps": 288, "train_loss": 0.1093, "seconds": 276.0}))
    loss = tmp_path / "pretrain" / "avts" / "plots" / "loss.csv"
    loss.parent.mkdir(parents=True)
    loss.write_text("step,loss\n10,0.9\n20,0.5\n30,0.3\n")
    cfg = load_config(None, [f"paths.metrics_dir={metrics}", f"pretrain.out_dir={tmp_path / 'pretrain'}"])
    return cfg, {"avts": avts, "avc": avc}, tmp_path


def test_report_shows_every_number_and_names_missing_methods(report_inputs):
    cfg, evaluations, root = report_inputs
    out = root / "report"
    summary = run_report(cfg, out)
    md = (out / "leaderboard.md").read_text()
    page = (out / "index.html").read_text()
    assert summary["methods"] == ["avts", "avc"]
    assert summary["missing"] == ["coattention", "cmac"]
    assert summary["report"] == str(out / "index.html")
    for text in (md, page):
        assert "coattention" in text and "cmac" in text and "Missing" in text
        for ev in evaluations.values():
            for number in _numbers(ev["tasks"]):
                assert fmt(number) in text, f"{fmt(number)} missing"
            for task in ev["tasks"].values():
                assert task["protocol"] in text
            assert ev["data"] in text
        assert "0.805" in text and "0.727" in text  # pretraining pretext accuracy
        assert "paper" in text and "tiny" in text  # presets
    # Rows put each method's pretrained and scratch numbers side by side, with preset and data.
    assert re.search(r"\| avts \| tiny \| pretrained \| 0\.284 \| 0\.538 \| 0\.711 \| 37\.5 \|", md)
    assert re.search(r"\| avts \| tiny \| scratch \| 0\.120 \| 0\.332 \| 0\.441 \| 61\.0 \|", md)
    assert "| avc | paper | centre_prior | 0.021 | 0.118 |" in md
    # Pictures are copied beside the page and linked relatively; a missing one is named, not fatal.
    links = re.findall(r'<img src="([^"]+)"', page)
    assert "img/avts/tsne_audio.png" in links and "img/avc/tsne_audio.png" in links
    assert "img/avts/localization_x_f0010.png" in links and "img/pretrain_avts_loss.png" in links
    for link in links:
        assert not Path(link).is_absolute() and (out / link).read_bytes()[:8] == PNG_MAGIC
    assert summary["missing_pictures"] == ["data/evaluate/avc/never_written.png"]
    assert "never_written.png" in page and "never_written.png" in md
    assert "acquire" not in summary["methods"]


def test_report_calls_wins_only_from_the_paired_interval(report_inputs):
    _, _, root = report_inputs
    build_report(root / "metrics", root / "report")
    md = (root / "report" / "leaderboard.md").read_text()
    page = (root / "report" / "index.html").read_text()
    section = md.split("## What pretraining buys")[1].split("\n## ")[0]
    win = "| avts | Frozen video encoder: kNN and linear probes | knn_all | 0.750 [0.542, 0.917] | 0.375 [0.167, 0.583] " \
          "| +0.375 [+0.125, +0.625] | win | – | 8 / 24 |"
    assert win in section
    assert "| avts | Frozen video encoder: kNN and linear probes | linear_all | 0.625 [0.417, 0.833] " \
           "| 0.562 [0.333, 0.792] | +0.062 [-0.167, +0.292] | not separable | 0.500 [0.250, 0.750] | 8 / 24 |" \
           in section
    # Retrieval here carries no intervals: its difference is shown, and nothing is called from it.
    assert "| avts | Video retrieval | R@1 | 0.284 | 0.120 | +0.164 | no interval | – | – |" in section
    assert section.count("| win |") == 2 and "| loss |" not in section  # avts and avc knn_all only
    # The task's own table shows each number with its interval.
    assert "| avts | tiny | pretrained | 0.750 [0.542, 0.917] | 0.625 [0.417, 0.833] |" in md
    assert '<tr class="win">' in page and "not separable" in page


def test_report_refuses_a_malformed_evaluation_file(report_inputs):
    cfg, _, root = report_inputs
    (Path(cfg.paths.metrics_dir) / "cmac.json").write_text(json.dumps({"method": "cmac", "tasks": {}}))
    with pytest.raises(DataError, match=r"cmac\.json.*'preset'"):
        run_report(cfg, root / "report")
    (Path(cfg.paths.metrics_dir) / "cmac.json").write_text("{not json")
    with pytest.raises(DataError, match=r"cmac\.json"):
        run_report(cfg, root / "report")


def test_avssl_report_command(report_inputs, monkeypatch, repo_root, capsys):
    cfg, _, root = report_inputs
    monkeypatch.chdir(root)
    code = main(["--params", str(repo_root / "params.yaml"), "--set", f"paths.metrics_dir={cfg.paths.metrics_dir}",
                 "--set", f"pretrain.out_dir={cfg.pretrain.out_dir}", "report"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["report"] == "dashboards/report/index.html" and printed["missing"] == ["coattention", "cmac"]
    assert (root / "dashboards" / "report" / "leaderboard.md").is_file()
