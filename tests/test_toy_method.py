"""Adding a method touches methods/ and its tests only: a fifth method defined here, in the test, is
registered and runs through pretrain, evaluate and report by the same stage functions as the four
built-in ones, and the CLI help names it. Nothing outside this file knows about it.

The toy method keeps every default of PretrainMethod (no input statistics to fit or copy, no localization
maps) except a shared embedding space, so evaluation's cross-modal retrieval runs on it as the base
class's contract says.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avssl_core.config import load_config
from avssl_core.methods.base import OptimSpec, PretrainMethod, StepOutput
from avssl_core.methods.registry import METHODS, build_method, register
from avssl_core.pretext.spec import CurriculumStage, NegativeMix, PairSpec
from avssl_core.transforms.features import PairTransform, pair_identity

pytestmark = pytest.mark.timeout(240)


class ToyPreprocess(PairTransform):
    """Raw pair -> the middle frame pooled to 8x8 and the mono waveform's magnitude pooled to 16 bins."""

    def __call__(self, sample: dict) -> dict:
        video = sample["video"]
        frame = video[video.shape[0] // 2].permute(2, 0, 1).float() / 255.0  # [3, H, W]
        audio = sample["audio"].float().mean(0, keepdim=True).abs()  # [1, S]
        return {"video": F.adaptive_avg_pool2d(frame, 8), "audio": F.adaptive_avg_pool1d(audio, 16)[0],
                **pair_identity(sample)}


class Toy(PretrainMethod):
    """Correspondence from the squared distance of two linear embeddings of a frame and a sound."""

    name = "toy"
    PRESETS = {"tiny": {"embed_dim": 8, "audio_seconds": 0.5, "sample_rate": 8000, "lr": 1e-2,
                        "batch_size": 4, "pairs_per_clip": 1, "epochs": 1}}

    def __init__(self, preset: str, **overrides: Any) -> None:
        super().__init__(preset, **overrides)
        dim = self.hparams["embed_dim"]
        self.video_net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, dim))
        self.audio_net = nn.Sequential(nn.Flatten(), nn.Linear(16, dim))
        self.bias = nn.Parameter(torch.zeros(()))

    def pair_spec(self) -> PairSpec:
        hp = self.hparams
        return PairSpec(video_frames=1, video_fps=None, audio_seconds=hp["audio_seconds"], positive_fraction=0.5,
                        curriculum=(CurriculumStage(0, NegativeMix(easy=1.0)),), audio_channels=1,
                        audio_sample_rate=hp["sample_rate"])

    def preprocess(self, *, train: bool = True) -> ToyPreprocess:
        return ToyPreprocess()

    def has_shared_space(self) -> bool:
        return True

    def embed_video(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.video_net(batch["video"])

    def embed_audio(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.audio_net(batch["audio"])

    def training_step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        logit = self.bias - (self.embed_video(batch) - self.embed_audio(batch)).pow(2).sum(1)
        loss = F.binary_cross_entropy_with_logits(logit, batch["label"].float())
        correct = ((logit > 0).long() == batch["label"]).long()
        return StepOutput(loss, {"acc": correct.float().mean().item()}, correct=correct, kinds=batch["kind"])

    def optim_spec(self) -> OptimSpec:
        return OptimSpec(name="adam", lr=self.hparams["lr"])


@pytest.fixture
def toy_registered():
    """The toy method in the registry for one test, and out of it afterwards (the registry is process-wide)."""
    register(Toy)
    yield Toy
    METHODS.pop(Toy.name)


def test_register_refuses_what_is_not_a_method_and_a_taken_name(toy_registered):
    assert register(Toy) is Toy and list(METHODS)[-1] == "toy"  # registering the same class again is harmless
    assert isinstance(build_method("toy", "tiny"), Toy)
    with pytest.raises(TypeError, match="not a PretrainMethod subclass"):
        register(nn.Linear)

    class Impostor(Toy):
        pass

    with pytest.raises(ValueError, match=r"the method name 'toy' is taken by .*Toy"):
        register(Impostor)

    class Nameless(PretrainMethod):
        PRESETS = {"tiny": {}}

    with pytest.raises(ValueError, match="Nameless must set name and PRESETS"):
        register(Nameless)
    assert METHODS["toy"] is Toy


def test_cli_help_lists_a_registered_method(toy_registered, capsys):
    from avssl_core.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--help"])
    assert exit_info.value.code == 0
    assert "avts | avc | coattention | cmac | toy" in " ".join(capsys.readouterr().out.split())


def test_a_registered_method_runs_pretrain_evaluate_and_report(toy_registered, tiny_clips, tmp_path):
    from test_eval_downstream import labelled_index, tiny_run_overrides

    from avssl_core.stages.evaluate import run_evaluate
    from avssl_core.stages.pretrain import run_pretrain
    from avssl_core.stages.report import run_report

    index_csv = labelled_index(tiny_clips, tmp_path / "clips" / "index.csv")
    cfg = load_config(None, [
        *tiny_run_overrides(index_csv, tmp_path), "pretrain.method=toy",
        'evaluate.tasks=["pretext", "frozen", "retrieval"]', "evaluate.pretext.pairs=8",
        "evaluate.pretext.protocols=[easy]", "evaluate.retrieval.clips_per_video=2",
        "evaluate.frozen.clips_per_video=2", "evaluate.batch_size=8", "evaluate.bootstrap=50",
    ])

    pretrained = run_pretrain(cfg, "toy", "tiny")
    saved = torch.load(tmp_path / "pretrain" / "toy" / "model.pt", map_location="cpu", weights_only=True)
    assert saved["signature"]["method"] == "toy" and saved["signature"]["preset"] == "tiny"
    assert set(saved["state_dict"]) == {"video_net.1.weight", "video_net.1.bias", "audio_net.1.weight",
                                        "audio_net.1.bias", "bias"}
    assert json.loads((tmp_path / "metrics" / "pretrain_toy.json").read_text()) == json.loads(json.dumps(pretrained))

    # The report expects every registered method: before its evaluation the toy is named as missing.
    assert run_report(cfg, tmp_path / "early")["missing"] == ["avts", "avc", "coattention", "cmac", "toy"]

    run_evaluate(cfg)  # pretrain.method=toy: the default method
    metrics = json.loads((tmp_path / "metrics" / "toy.json").read_text())
    assert metrics["method"] == "toy" and metrics["preset"] == "tiny"
    # Cross-modal retrieval runs because the toy declares a shared space; nothing else in it is special.
    assert set(metrics["tasks"]) == {"pretext_easy", "frozen_video", "frozen_audio", "retrieval_video",
                                     "retrieval_cross"}
    for task, entry in metrics["tasks"].items():
        for kind in ("pretrained", "scratch"):
            assert entry[kind] and all(isinstance(v, float) and v == v for v in entry[kind].values()), (task, kind)
    assert 0.0 <= metrics["tasks"]["pretext_easy"]["pretrained"]["accuracy"] <= 1.0

    summary = run_report(cfg, tmp_path / "report")
    assert "toy" in summary["methods"] and "toy" in summary["pretraining"]
    assert summary["missing"] == ["avts", "avc", "coattention", "cmac"]  # the registry's, without metrics
    md = (tmp_path / "report" / "leaderboard.md").read_text()
    assert f"| toy | tiny | {metrics['data']} |" in md.replace("\\|", "|")
    accuracy = metrics["tasks"]["pretext_easy"]["pretrained"]["accuracy"]
    assert any(line.startswith("| toy | tiny | pretrained |") and f"{accuracy:.3f}" in line for line in md.splitlines())
