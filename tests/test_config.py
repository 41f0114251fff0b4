"""params.yaml + overrides -> typed config: typos and bad values must be caught, not defaulted."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from avssl_core.cli import main
from avssl_core.config import Config, load_config
from avssl_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_and_list_every_key():
    cfg = load_config(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())

    def walk(obj, node, where):
        # A user reads params.yaml to learn the knobs: every field must be spelled out there.
        for f in dataclasses.fields(obj):
            assert f.name in node, f"params.yaml lacks {where}{f.name}"
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, node[f.name], f"{where}{f.name}.")

    walk(cfg, raw, "")


def test_overrides_are_typed(tmp_path):
    cfg = load_config(REPO / "params.yaml", ["segment.clip_seconds=4.2", "synth.num_videos=3",
                                             "acquire.local.path=/videos"])
    assert cfg.segment.clip_seconds == pytest.approx(4.2)
    assert cfg.synth.num_videos == 3
    assert cfg.acquire.local.path == "/videos"
    # An int where a float is expected is fine; the reverse is not.
    assert load_config(None, ["segment.clip_seconds=10"]).segment.clip_seconds == 10.0
    with pytest.raises(ConfigError, match=r"synth\.num_videos: expected an integer"):
        load_config(None, ["synth.num_videos=2.5"])


def test_unknown_key_names_it_and_suggests(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("segment:\n  clip_second: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'clip_second' \(did you mean 'clip_seconds'\?\)"):
        load_config(params)
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(None, ["nope.x=1"])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["segment.clip_seconds"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("segment: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_min_duration_defaults_to_one_clip():
    cfg = load_config(None, ["segment.clip_seconds=4.2"])
    assert cfg.min_duration_s == pytest.approx(4.2)
    cfg = load_config(None, ["segment.clip_seconds=4.2", "validate.min_duration_s=8"])
    assert cfg.min_duration_s == 8.0


def test_cli_reports_config_errors_without_traceback(capsys):
    rc = main(["--params", str(REPO / "params.yaml"), "--set", "acquire.source=ftp", "acquire"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "acquire.source: unknown source 'ftp'" in err
    assert "Traceback" not in err
    assert Config().segment.clip_seconds == 10.0


@pytest.mark.timeout(30)
def test_a_section_built_in_code_is_checked_and_named_by_its_key():
    # dataclasses.replace runs the same checks as params.yaml: a bad value in code fails where it is made.
    train = Config().pretrain.train
    assert dataclasses.replace(train, epochs=3).epochs == 3
    with pytest.raises(ConfigError, match=r"^pretrain\.train\.epochs must be >= 1, got 0$"):
        dataclasses.replace(train, epochs=0)
    with pytest.raises(ConfigError, match=r"^pretrain\.train\.batch_size: 'x' is not a int \| None$"):
        dataclasses.replace(train, batch_size="x")
    with pytest.raises(ConfigError, match=r"^acquire\.lakefs: unknown key 'endpoint' \(did you mean 'endpoint_url'\?\)$"):
        dataclasses.replace(Config().acquire.lakefs, endpoint="http://lakefs")
    with pytest.raises(ConfigError, match=r"^segment: expected a mapping, got dict$"):
        Config(segment={"clip_seconds": 4})  # in code a section is given as its dataclass


@pytest.mark.timeout(30)
def test_sections_stay_plain_dataclasses_with_their_declared_types():
    cfg = load_config(None, ["segment.clip_seconds=10", "synth.split_fractions={train: 1}"])
    # An integer where a number is declared is stored as a float: asdict (fingerprints, DVC params) is unchanged.
    assert type(cfg.segment.clip_seconds) is float and type(cfg.synth.split_fractions["train"]) is float
    assert dataclasses.is_dataclass(cfg.pretrain.train)
    assert dataclasses.asdict(load_config(None)) == dataclasses.asdict(Config())
    assert [f.name for f in dataclasses.fields(cfg.evaluate.paper_max)] == ["epochs", "iterations", "clips"]


@pytest.mark.timeout(30)
def test_errors_name_the_parameters_file_every_mistake_and_the_expected_choices(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("pretrain:\n  train:\n    epochs: 0\n    precision: fp8\n")
    with pytest.raises(ConfigError) as caught:
        load_config(params)
    # Every mistake of a section at once, each under its full key in the file.
    assert str(caught.value) == (f"{params}.pretrain.train.epochs must be >= 1, got 0; {params}.pretrain.train"
                                 ".precision: expected one of 'auto', 'fp32', 'bf16' or 'fp16', got 'fp8'")
    with pytest.raises(ConfigError, match=r"retrain\.direction: expected one of 'maximize' or 'minimize', got 'up'"):
        load_config(None, ["retrain.direction=up"])
    with pytest.raises(ConfigError, match=r"ablate\.pruner_startup_trials must be >= 0, got -1$"):
        load_config(None, ["ablate.pruner_startup_trials=-1"])
    with pytest.raises(ConfigError, match=r"acquire\.manifest\.download_budget_bytes must be >= 1, got 0$"):
        load_config(None, ["acquire.manifest.download_budget_bytes=0"])


@pytest.mark.timeout(30)
def test_wrong_mapping_keys_name_the_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"^config\.synth\.split_fractions: expected a string, got 1$"):
        load_config(None, ["synth.split_fractions={1: 0.5}"])
    with pytest.raises(ConfigError, match=r"^config\.pretrain\.hparams\.avc: expected a string, got 1$"):
        load_config(None, ["pretrain.hparams={avc: {1: 2}}"])
    params = tmp_path / "params.yaml"
    params.write_text("segment:\n  5: 1\n")  # YAML reads the key as a number: it names no field
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(params))}\.segment: unknown key 5$"):
        load_config(params)
