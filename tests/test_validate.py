"""The validate stage on a folder mixing good files with every kind of broken one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from avssl_core.config import Config, PathsConfig, ValidateConfig
from avssl_core.data.probe import probe_file
from avssl_core.data.tables import MANIFEST_COLUMNS, SOURCE_COLUMNS, read_table, write_table
from avssl_core.errors import DataError
from avssl_core.stages.validate import run_validate

# What each crafted file must be quarantined for (exactly these codes); absent names must be valid.
EXPECTED_REASONS = {
    "zero_bytes": {"unreadable"},
    "text": {"unreadable"},
    "truncated_no_moov": {"unreadable"},
    "truncated_mid_mdat": {"not_decodable"},
    "truncated_mkv": {"not_decodable"},
    "no_audio": {"no_audio"},
    "no_video": {"no_video"},
    "silent_audio": {"silent_audio"},
    "static_video": {"static_video"},
    "low_sample_rate": {"low_sample_rate"},
    "too_short": {"too_short"},
    "low_fps": {"fps_out_of_range"},
    "tiny_resolution": {"resolution_out_of_range"},
    "exact_duplicate": {"duplicate"},
    "remuxed_duplicate": {"duplicate"},
    "symlink_outside": {"outside_data_root"},
}
GOOD = {"good_a", "good_b", "good_multistream", "good_vfr", "good_10bit", "bigbuckbunny"}


def _manifest_row(video_id: str, path: Path, source_root: Path) -> dict:
    row = dict.fromkeys(SOURCE_COLUMNS, "")
    row.update(video_id=video_id, path=str(path), source="local", source_uri=str(path),
               source_root=str(source_root))
    return {**row, **probe_file(path)}


def _config(tmp_path: Path, **validate) -> Config:
    paths = PathsConfig(data_root=str(tmp_path / "data"), acquired_dir=str(tmp_path / "acquired"),
                        validated_dir=str(tmp_path / "validated"), metrics_dir=str(tmp_path / "metrics"))
    settings = {"min_duration_s": 1.0, "workers": 1, **validate}
    return Config(paths=paths, validate=ValidateConfig(**settings))


def _write_manifest(cfg: Config, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_table(Path(cfg.paths.acquired_dir) / "manifest.csv", frame, MANIFEST_COLUMNS)


def _zoo_rows(media_zoo: dict[str, Path], bigbuckbunny: Path) -> list[dict]:
    root = media_zoo["root"]
    names = sorted(n for n in media_zoo if n not in ("root", "outside"))
    # Originals before their copies: the first occurrence is the one that stays valid.
    names.sort(key=lambda n: n.endswith("duplicate"))
    rows = [_manifest_row(n, media_zoo[n], root) for n in names]
    rows.append(_manifest_row("bigbuckbunny", bigbuckbunny, bigbuckbunny.parent))
    return rows


@pytest.fixture(scope="module")
def validated(tmp_path_factory, media_zoo, bigbuckbunny):
    """One validate run (2 workers) over the whole zoo; shared by the assertions below."""
    tmp_path = tmp_path_factory.mktemp("validate")
    cfg = _config(tmp_path, min_valid_fraction=0.2, workers=2)
    _write_manifest(cfg, _zoo_rows(media_zoo, bigbuckbunny))
    summary = run_validate(cfg)
    valid = read_table(Path(cfg.paths.validated_dir) / "valid.csv")
    quarantine = read_table(Path(cfg.paths.validated_dir) / "quarantine.csv")
    return cfg, summary, valid, quarantine


def test_every_file_is_valid_or_quarantined_for_the_right_reason(validated):
    _, _, valid, quarantine = validated
    assert set(valid["video_id"]) == GOOD
    assert set(valid["video_id"]).isdisjoint(quarantine["video_id"])
    got = {row.video_id: set(row.reasons.split(";")) for row in quarantine.itertuples()}
    assert got == EXPECTED_REASONS


def test_details_name_the_offending_values(validated):
    _, _, _, quarantine = validated
    details = dict(zip(quarantine["video_id"], quarantine["details"], strict=True))
    assert details["exact_duplicate"] == "duplicate of good_a"
    assert details["remuxed_duplicate"] == "duplicate of good_b"
    assert details["zero_bytes"] == "empty file (0 bytes)"
    assert "moov atom not found" in details["truncated_no_moov"]
    assert "announces" in details["truncated_mkv"]
    assert details["low_sample_rate"] == "audio sample rate 8000 Hz < 16000"
    assert details["silent_audio"] == "audio RMS -120.0 dBFS < -60.0"
    assert details["tiny_resolution"] == "32x32: short side 32 < 64"
    assert details["low_fps"] == "5.00 fps outside [10, 120]"
    assert details["too_short"] == "duration 0.60 s < 1.00"
    assert "outside" in details["symlink_outside"] and "elsewhere.mp4" in details["symlink_outside"]


def test_outputs_carry_decode_stats_and_counts_add_up(validated):
    cfg, summary, valid, quarantine = validated
    assert valid["decodable"].all()
    assert (valid["decoded_video_s"] > 1.0).all()
    assert valid["content_hash"].str.len().eq(64).all()
    metrics = json.loads((Path(cfg.paths.metrics_dir) / "validate.json").read_text())
    assert metrics["total"] == len(valid) + len(quarantine) == len(GOOD) + len(EXPECTED_REASONS)
    assert metrics["valid"] == len(GOOD) and metrics["quarantined"] == len(EXPECTED_REASONS)
    assert metrics["valid_fraction"] == pytest.approx(len(GOOD) / metrics["total"], abs=1e-4)
    assert sum(metrics["reasons"].values()) == sum(len(r) for r in EXPECTED_REASONS.values())
    assert metrics["reasons"]["unreadable"] == 3 and metrics["reasons"]["duplicate"] == 2
    assert summary["valid"] == metrics["valid"]


def test_great_expectations_project_and_data_docs_are_written(validated):
    cfg, summary, _, _ = validated
    validated_dir = Path(cfg.paths.validated_dir)
    index = Path(summary["data_docs_index"])
    assert index == validated_dir / "datadocs" / "index.html" and index.is_file()
    assert list((validated_dir / "datadocs" / "validations").rglob("*.html"))
    assert (validated_dir / "gx" / "gx" / "great_expectations.yml").is_file()
    assert (validated_dir / "gx" / "gx" / "expectations" / "avssl_video_sources.json").is_file()


def test_data_docs_load_nothing_from_the_network(validated):
    # GX writes CDN links; validate points them at the copies it puts beside the pages (offline machines).
    from avssl_core.offline_html import remote_urls

    docs = Path(validated[0].paths.validated_dir) / "datadocs"
    pages = sorted(docs.glob("**/*.html"))
    pages = [p for p in pages if "offline-assets" not in p.parts]
    assert len(pages) >= 3  # index, the suite, one validation
    for page in pages:
        html = page.read_text()
        assert remote_urls(html) == [], page
        for path in re.findall(r'(?:src|href)="([^"#:]+/offline-assets/[^"]+)"', html):
            assert (page.parent / path).is_file(), (page, path)
        assert "offline-assets/bootstrap-table/bootstrap-table.min.js" in html  # fills the results table


def test_below_min_valid_fraction_raises_after_writing_outputs(tmp_path, media_zoo, caplog):
    cfg = _config(tmp_path, min_valid_fraction=0.9)
    root = media_zoo["root"]
    _write_manifest(cfg, [_manifest_row(n, media_zoo[n], root)
                          for n in ("good_a", "zero_bytes", "silent_audio", "static_video")])
    with pytest.raises(DataError) as err:
        run_validate(cfg)
    message = str(err.value)
    assert "only 1 of 4 files are valid (25% < validate.min_valid_fraction 90%)" in message
    assert "unreadable: 1" in message and "silent_audio: 1" in message
    quarantine_csv = Path(cfg.paths.validated_dir) / "quarantine.csv"
    assert str(quarantine_csv) in message
    assert len(read_table(quarantine_csv)) == 3
    assert (Path(cfg.paths.metrics_dir) / "validate.json").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("zero_bytes.mp4" in w and "unreadable" in w for w in warnings)


def test_no_valid_file_raises(tmp_path, media_zoo):
    cfg = _config(tmp_path)
    _write_manifest(cfg, [_manifest_row("text", media_zoo["text"], media_zoo["root"])])
    with pytest.raises(DataError, match="none of the 1 files is valid; top reasons: unreadable: 1"):
        run_validate(cfg)


def test_empty_manifest_raises(tmp_path):
    cfg = _config(tmp_path)
    _write_manifest(cfg, [])
    with pytest.raises(DataError, match="no files to validate"):
        run_validate(cfg)
    assert json.loads((Path(cfg.paths.metrics_dir) / "validate.json").read_text())["total"] == 0
