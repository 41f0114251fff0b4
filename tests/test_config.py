"""params.yaml + overrides -> typed config: typos and bad values must be caught, not defaulted."""

import dataclasses
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
