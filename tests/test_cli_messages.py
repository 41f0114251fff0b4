"""What `avssl ... --set key=value` says for each kind of wrong value: the exact message naming the key,
the expected kind and the value given, on stderr, exit code 2, no traceback, and no stage started."""

from __future__ import annotations

from pathlib import Path

import pytest

from avssl_core.cli import main

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"

pytestmark = pytest.mark.timeout(60)

CASES = [
    # bool
    ("evaluate.scratch=maybe", "evaluate.scratch: expected true/false, got 'maybe'"),
    ("acquire.local.label_from_parent=1", "acquire.local.label_from_parent: expected true/false, got 1"),
    # numbers
    ("segment.clip_seconds=ten", "segment.clip_seconds: expected a number, got 'ten'"),
    ("segment.clip_seconds=true", "segment.clip_seconds: expected a number, got True"),
    ("synth.num_videos=2.5", "synth.num_videos: expected an integer, got 2.5"),
    ("pretrain.train.max_steps=many", "pretrain.train.max_steps: 'many' is not a int | None"),
    # lists, and an element of a list
    ("acquire.local.extensions=.mp4", "acquire.local.extensions: expected a list, got '.mp4'"),
    ("evaluate.retrieval.ks=[1, five]", "evaluate.retrieval.ks[1]: expected an integer, got 'five'"),
    # mappings, and a value inside one
    ("synth.split_fractions=0.7", "synth.split_fractions: expected a mapping, got 0.7"),
    ("synth.split_fractions={train: most}", "synth.split_fractions.train: expected a number, got 'most'"),
    ("segment=4", "segment: expected a mapping, got int"),
    ("segment.clip_seconds.x=1", "override 'segment.clip_seconds.x=1': 'clip_seconds' is not a section"),
    # ranges and choices
    ("pretrain.train.max_failed_fraction=1.5", "train.max_failed_fraction must be in [0, 1], got 1.5"),
    ("pretrain.train.epochs=0", "train.epochs must be >= 1, got 0"),
    ("pretrain.train.precision=fp8", "train.precision: expected one of"),
    ("retrain.min_improvement=-0.1", "retrain.min_improvement must be >= 0, got -0.1"),
    # syntax
    ("segment.clip_seconds=[1,", "override 'segment.clip_seconds=[1,': value is not valid YAML"),
    ("segment.clip_seconds", "override 'segment.clip_seconds': expected section.key=value"),
    ("segment.clip_secs=4", "unknown key 'clip_secs' (did you mean 'clip_seconds'?)"),
]


@pytest.mark.parametrize(("override", "message"), CASES, ids=[c[0] for c in CASES])
def test_set_with_a_wrong_value_names_key_kind_and_value(override, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # had the stage started, it would write here, not in the repo
    rc = main(["--params", str(PARAMS), "--set", override, "acquire"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.err.startswith("avssl acquire: error: "), captured.err
    assert message in captured.err, captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""  # no summary: the stage never ran
    assert list(tmp_path.iterdir()) == []
