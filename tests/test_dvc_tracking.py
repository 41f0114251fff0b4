"""What dvc.yaml tracks per method, and what reads it: the flows' override check and their pretrain cache
keys. No DVC run here (tests/test_pipeline_dvc.py runs the real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from avssl_core import pipeline_spec
from avssl_core.config import load_config
from avssl_core.errors import ConfigError
from avssl_core.orchestration import cache, versioning

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)


def test_pretrain_tracks_shared_keys_and_only_its_own_hparams():
    stages = pipeline_spec.dvc_stages(REPO)
    # Every method's stage tracks the shared keys and its own hyper-parameters, no other method's.
    *shared, own = pipeline_spec.tracked_params(stages, "pretrain", ["cmac"])
    assert own == "pretrain.hparams.cmac"
    assert shared and not any(key.startswith("pretrain.hparams") for key in shared)
    # What selects the runs is not a parameter of any run.
    tracked = pipeline_spec.tracked_params(stages, "pretrain", ["avts", "avc", "coattention", "cmac"])
    assert not {"pretrain", "pretrain.method", "pretrain.methods", "pretrain.hparams"} & set(tracked)
    # DVC needs every method's entry in params.yaml (an empty mapping is tracked as {}).
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(params["pretrain"]["methods"]) <= set(params["pretrain"]["hparams"])
    assert pipeline_spec.foreach_items(stages, "pretrain", params) == params["pretrain"]["methods"]


def test_override_of_one_methods_hparams_is_caught_for_the_pretrain_stage():
    stages = pipeline_spec.dvc_stages(REPO)
    ref = load_config(REPO / "params.yaml")
    override = ["pretrain.hparams.cmac.lambda_ac=1.0"]
    eff = load_config(REPO / "params.yaml", override)
    with pytest.raises(ConfigError, match=r"pretrain\.hparams\.cmac, which dvc\.yaml tracks for stage 'pretrain'"):
        versioning.check_overrides_versionable(eff, ref, stages, ["pretrain"], override)
    versioning.check_overrides_versionable(eff, ref, stages, ["evaluate", "segment"], override)
    # A method added by the override is checked too (its dvc.yaml stage would be pretrain@<it>).
    override = ["pretrain.methods=[avc]", "pretrain.hparams.avc.lr=0.1"]
    with pytest.raises(ConfigError, match=r"pretrain\.hparams\.avc"):
        versioning.check_overrides_versionable(load_config(REPO / "params.yaml", override), ref, stages,
                                               ["pretrain"], override)


def test_pretrain_cache_key_changes_only_for_the_method_whose_hparams_changed(tmp_path):
    (tmp_path / "index.csv").write_text("clip_id\nc0\n")

    def keys(*overrides: str) -> dict[str, str | None]:
        cfg = load_config(REPO / "params.yaml", [f"paths.clips_dir={tmp_path}", *overrides])
        return {m: cache.pretrain_key(cfg, m, "tiny") for m in ("avc", "cmac")}

    base = keys()
    changed = keys("pretrain.hparams.cmac.lambda_ac=1.0")
    assert changed["avc"] == base["avc"] and changed["cmac"] != base["cmac"]
    assert keys("pretrain.methods=[avc]") == base  # which methods run is not a parameter of a run
    assert keys("pretrain.train.seed=1")["avc"] != base["avc"]
