"""The validation checks (data/expectations.py) on manifest rows written by hand: every threshold just
inside and just outside, every reason code with its detail, and the derived columns the checks read.

No file is decoded: a row holds the numbers probe and decode would have measured, so each boundary sits
exactly on its value. One run of the suite through the real Great Expectations checkpoint (module
fixture) serves the table tests; the derived columns are checked without GX. Each test fails on a
one-token change to the checks (found by mutation testing: scripts/mutation.sh expectations).
test_validate.py and test_validate_boundaries.py run the same checks through the validate stage on real
encoded files.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from avssl_core.config import Config, ValidateConfig
from avssl_core.data.probe import DECODE_COLUMNS
from avssl_core.data.tables import MANIFEST_COLUMNS

pytestmark = pytest.mark.timeout(120)

gx_checks = pytest.importorskip("avssl_core.data.expectations")  # imports Great Expectations (seconds)

DEFAULTS = ValidateConfig()


def base_row(root: Path, video_id: str) -> dict:
    """A file that passes every check: 12 s, 96x64 at 25 fps, 16 kHz audio at -20 dBFS, moving pictures."""
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(video_id=video_id, path=str(root / f"{video_id}.mp4"), source="local", source_root=str(root),
               sha256=f"sha-{video_id}", probe_error="", duration_s=12.0, num_video_streams=1, num_audio_streams=1,
               width=96, height=64, fps=25.0, audio_sample_rate=16000)
    row.update(dict.fromkeys(DECODE_COLUMNS, None))
    row.update(decodable=True, decode_error="", audio_rms_dbfs=-20.0, mean_frame_diff=5.0,
               content_hash=f"content-{video_id}")
    return row


NAN = float("nan")
UNOPENED = {"duration_s": NAN, "num_video_streams": 0, "num_audio_streams": 0, "width": NAN, "height": NAN,
            "fps": NAN, "audio_sample_rate": NAN, "decodable": None, "audio_rms_dbfs": None,
            "mean_frame_diff": None, "content_hash": ""}

# video_id -> (the row's values besides the base row's, reasons, details); {root} is the source root.
CASES = {
    "valid": ({}, [], []),
    # Every threshold of ValidateConfig's defaults (and Config's min_duration_s), on it and just beyond it.
    "duration_at_min": ({"duration_s": 10.0}, [], []),
    "duration_below_min": ({"duration_s": 9.99}, ["too_short"], ["duration 9.99 s < 10.00"]),
    "fps_at_min": ({"fps": DEFAULTS.min_fps}, [], []),
    "fps_below_min": ({"fps": 9.999}, ["fps_out_of_range"], ["10.00 fps outside [10, 120]"]),
    "fps_at_max": ({"fps": DEFAULTS.max_fps}, [], []),
    "fps_above_max": ({"fps": 120.01}, ["fps_out_of_range"], ["120.01 fps outside [10, 120]"]),
    "short_side_at_min": ({"height": DEFAULTS.min_short_side}, [], []),
    "short_side_below_min": ({"width": 63, "height": 96}, ["resolution_out_of_range"],
                             ["63x96: short side 63 < 64"]),
    "long_side_at_max": ({"width": DEFAULTS.max_long_side}, [], []),
    "long_side_above_max": ({"height": 4097}, ["resolution_out_of_range"], ["96x4097: long side 4097 > 4096"]),
    "sample_rate_at_min": ({"audio_sample_rate": DEFAULTS.min_audio_sample_rate}, [], []),
    "sample_rate_below_min": ({"audio_sample_rate": 15999}, ["low_sample_rate"],
                              ["audio sample rate 15999 Hz < 16000"]),
    "loudness_at_min": ({"audio_rms_dbfs": DEFAULTS.min_audio_rms_dbfs}, [], []),
    "loudness_below_min": ({"audio_rms_dbfs": -60.01}, ["silent_audio"], ["audio RMS -60.0 dBFS < -60.0"]),
    "motion_at_min": ({"mean_frame_diff": DEFAULTS.min_frame_diff}, [], []),
    "motion_below_min": ({"mean_frame_diff": 0.4999}, ["static_video"], ["mean frame difference 0.500 < 0.5"]),
    # One reason per broken property, with the explanation the quarantine list shows.
    "unreadable": ({**UNOPENED, "probe_error": "moov atom not found"}, ["unreadable"], ["moov atom not found"]),
    "header_without_fps": ({"fps": NAN}, ["unreadable"], ["header does not give: fps"]),
    "header_without_duration_or_rate": ({"duration_s": NAN, "audio_sample_rate": NAN}, ["unreadable"],
                                        ["header does not give: duration_s, audio_sample_rate"]),
    "not_decodable": ({"decodable": False, "decode_error": "frame 12: invalid data", "audio_rms_dbfs": None,
                       "mean_frame_diff": None}, ["not_decodable"], ["frame 12: invalid data"]),
    "no_video": ({"num_video_streams": 0, "width": NAN, "height": NAN, "fps": NAN, "mean_frame_diff": None},
                 ["no_video"], ["no video stream"]),
    "no_audio": ({"num_audio_streams": 0, "audio_sample_rate": NAN, "audio_rms_dbfs": None},
                 ["no_audio"], ["no audio stream"]),
    "same_bytes": ({"sha256": "sha-valid"}, ["duplicate"], ["duplicate of valid"]),
    "same_pictures": ({"content_hash": "content-valid"}, ["duplicate"], ["duplicate of valid"]),
    # Never opened (a probe refusal): quarantined for where it points only, not also as unreadable.
    "outside_root": ({**UNOPENED, "path": "{root}/../elsewhere/outside_root.mp4", "probe_error": "refused"},
                     ["outside_data_root"], ["resolves to {parent}/elsewhere/outside_root.mp4, outside {root}"]),
    "no_root": ({"source_root": ""}, ["outside_data_root"],
                ["resolves to {root}/no_root.mp4, outside (no source_root given)"]),
    # Several problems: every reason once, in the suite's order, and every detail.
    "slow_and_low_rate": ({"fps": 5.0, "audio_sample_rate": 8000}, ["fps_out_of_range", "low_sample_rate"],
                          ["5.00 fps outside [10, 120]", "audio sample rate 8000 Hz < 16000"]),
    "narrow_and_long": ({"width": 5000, "height": 32}, ["resolution_out_of_range"],
                        ["5000x32: short side 32 < 64", "5000x32: long side 5000 > 4096"]),
}


# -- the derived columns, without GX --------------------------------------------------------------

def test_derived_columns_number_rows_and_coerce_what_the_checks_compare(tmp_path):
    root = tmp_path / "media"
    rows = [base_row(root, "a"), {**base_row(root, "b"), "width": "wide", "fps": "", "probe_error": "bad"},
            {**base_row(root, "c"), "height": 200, "width": 120, "duration_s": "7.5"}]
    table = pd.DataFrame(rows, index=[5, 9, 2])
    frame = gx_checks.add_check_columns(table)
    assert list(table.index) == [5, 9, 2] and "row" not in table  # the input is left as it was
    assert list(frame.index) == [0, 1, 2] and list(frame["row"]) == [0, 1, 2]
    assert list(frame["opened"]) == [True, False, True]
    assert math.isnan(frame.at[1, "width"]) and math.isnan(frame.at[1, "fps"]) and frame.at[2, "duration_s"] == 7.5
    assert frame.at[0, "short_side"] == 64 and frame.at[0, "long_side"] == 96
    assert frame.at[2, "short_side"] == 120 and frame.at[2, "long_side"] == 200
    assert math.isnan(frame.at[1, "short_side"]) and math.isnan(frame.at[1, "long_side"])  # one side unknown
    assert list(frame["missing_properties"]) == ["", "", ""]  # b did not open: unreadable for that already


def test_a_file_counts_as_inside_only_under_a_declared_root(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link.mp4").symlink_to(tmp_path / "elsewhere" / "target.mp4")
    rows = [base_row(root, "inside"), {**base_row(root, "link"), "sha256": "x"},
            {**base_row(root, "dotdot"), "path": str(root / ".." / "elsewhere" / "x.mp4")},
            {**base_row(root, "no_root"), "source_root": ""}, {**base_row(root, "nan_root"), "source_root": NAN}]
    frame = gx_checks.add_check_columns(pd.DataFrame(rows))
    assert list(frame["inside_source_root"]) == [True, False, False, False, False]
    assert list(frame["resolved_path"]) == [str(root / "inside.mp4"), str(tmp_path / "elsewhere" / "target.mp4"),
                                            str(tmp_path / "elsewhere" / "x.mp4"), str(root / "no_root.mp4"),
                                            str(root / "nan_root.mp4")]


def test_missing_properties_are_those_the_file_s_streams_need():
    def missing(**values):
        row = {"opened": True, "num_video_streams": 1, "num_audio_streams": 1, "duration_s": 1.0, "fps": 25.0,
               "width": 64, "height": 64, "audio_sample_rate": 16000, **values}
        return gx_checks._missing_properties(pd.Series(row))

    assert missing() == ""
    assert missing(duration_s=NAN, fps=NAN, width=NAN, height=None, audio_sample_rate=NAN) == \
        "duration_s, fps, width, height, audio_sample_rate"
    assert missing(num_video_streams=0, fps=NAN, width=NAN, height=NAN) == ""  # no video: no picture values
    assert missing(num_audio_streams=0, audio_sample_rate=NAN) == ""
    assert missing(num_video_streams=2, num_audio_streams=2, fps=NAN, audio_sample_rate=NAN) == \
        "fps, audio_sample_rate"
    assert missing(opened=False, duration_s=NAN) == ""  # quarantined for its probe error instead


def test_duplicates_point_at_the_first_copy_by_bytes_or_by_pictures():
    def row(video_id, sha, content, opened=True):
        return {"video_id": video_id, "sha256": sha, "content_hash": content, "opened": opened}

    frame = pd.DataFrame([
        row("a", "s1", "c1"), row("b", "s1", "c2"), row("c", "s3", "c2"), row("d", "s4", "c1"),
        row("empty1", "s0", "", opened=False), row("empty2", "s0", "", opened=False),  # unreadable, not copies
        row("e", "s5", ""), row("f", "s6", ""), row("g", "s7", NAN), row("h", "s8", NAN),  # no content hash
        row("i", "", "c9"), row("j", "", "c10"),  # no sha256
    ])
    # c's pictures were first seen in b (itself a copy of a's bytes): each key remembers its first file.
    assert gx_checks._first_copies(frame) == [None, "a", "b", "a", None, None, None, None, None, None, None, None]


def test_unknown_values_are_named_unknown():
    assert gx_checks._num(None) == "unknown" and gx_checks._num(NAN) == "unknown"
    assert gx_checks._num(3.14159) == "3.14" and gx_checks._num(63.0, ".0f") == "63" and gx_checks._num(0) == "0.00"


def test_errors_are_found_at_the_top_level_or_under_a_metric():
    raised = gx_checks._raised_exception
    assert raised({}) is None and raised({"raised_exception": False, "exception_message": "x"}) is None
    assert raised({"raised_exception": True, "exception_message": "bad value set"}) == "bad value set"
    assert raised({"m1": {"raised_exception": False}, "m2": {"raised_exception": True, "exception_message": None,
                                                             "exception_traceback": "Traceback\n  ...\nKeyError: 'x'\n"}}) \
        == "KeyError: 'x'"
    assert raised({"m": {"raised_exception": True}}) == "unknown error"
    assert raised({"m": "not a dict", "n": {"raised_exception": True, "exception_message": "line 1\nline 2"}}) == "line 2"


@pytest.fixture
def active_context():
    """GX builds a suite only once some data context is active; an in-memory one does."""
    return gx_checks.gx.get_context(mode="ephemeral")


# check -> (expectation, its arguments, the rows it looks at)
SUITE = [
    ("container_opens", "ExpectColumnValuesToBeInSet", {"column": "probe_error", "value_set": [""]}, "INSIDE"),
    ("header_complete", "ExpectColumnValuesToBeInSet", {"column": "missing_properties", "value_set": [""]}, None),
    ("decodes_fully", "ExpectColumnValuesToBeInSet", {"column": "decodable", "value_set": [True]}, "OPENED"),
    ("has_video", "ExpectColumnValuesToBeBetween", {"column": "num_video_streams", "min_value": 1}, "OPENED"),
    ("has_audio", "ExpectColumnValuesToBeBetween", {"column": "num_audio_streams", "min_value": 1}, "OPENED"),
    ("long_enough", "ExpectColumnValuesToBeBetween", {"column": "duration_s", "min_value": 10}, "OPENED"),
    ("fps_in_range", "ExpectColumnValuesToBeBetween", {"column": "fps", "min_value": 10, "max_value": 120}, "HAS_VIDEO"),
    ("short_side_large_enough", "ExpectColumnValuesToBeBetween", {"column": "short_side", "min_value": 64}, "HAS_VIDEO"),
    ("long_side_small_enough", "ExpectColumnValuesToBeBetween", {"column": "long_side", "max_value": 4096}, "HAS_VIDEO"),
    ("sample_rate_high_enough", "ExpectColumnValuesToBeBetween", {"column": "audio_sample_rate", "min_value": 16000},
     "HAS_AUDIO"),
    ("audio_not_silent", "ExpectColumnValuesToBeBetween", {"column": "audio_rms_dbfs", "min_value": -60}, "DECODED"),
    ("video_not_static", "ExpectColumnValuesToBeBetween", {"column": "mean_frame_diff", "min_value": 0.5}, "DECODED"),
    ("content_unique", "ExpectColumnValuesToBeNull", {"column": "duplicate_of"}, None),
    ("inside_source_root", "ExpectColumnValuesToBeInSet", {"column": "inside_source_root", "value_set": [True]}, None),
]


def test_the_suite_has_one_tagged_expectation_per_check_on_the_rows_it_applies_to(active_context):
    suite = gx_checks.build_suite(Config())
    assert suite.name == "avssl_video_sources" and suite.meta["notes"] == "avssl: usable audio-visual source videos"
    got = [(e.meta["check"], type(e).__name__,
            {k: v for k, v in e.configuration.kwargs.items() if k != "row_condition"}, e.row_condition)
           for e in suite.expectations]
    assert got == [(name, kind, arguments, condition and getattr(gx_checks, condition))
                   for name, kind, arguments, condition in SUITE]
    assert [e.meta["reason"] for e in suite.expectations] == [check.reason for check in gx_checks.checks()]
    assert [check.reason for check in gx_checks.checks()] == [
        "unreadable", "unreadable", "not_decodable", "no_video", "no_audio", "too_short", "fps_out_of_range",
        "resolution_out_of_range", "resolution_out_of_range", "low_sample_rate", "silent_audio", "static_video",
        "duplicate", "outside_data_root"]
    assert set(gx_checks.REASON_CODES) == {check.reason for check in gx_checks.checks()}
    assert suite.expectations[6].description == "fps_in_range (quarantine reason: fps_out_of_range)"


def test_thresholds_come_from_the_config(active_context):
    cfg = Config(validate=ValidateConfig(min_fps=5, max_fps=60, min_short_side=32, max_long_side=1024,
                                         min_audio_sample_rate=8000, min_audio_rms_dbfs=-50.0, min_frame_diff=2.0,
                                         min_duration_s=3.0))
    bounds = {e.meta["check"]: (e.configuration.kwargs.get("min_value"), e.configuration.kwargs.get("max_value"))
              for e in gx_checks.build_suite(cfg).expectations}
    assert {name: bounds[name] for name in ("long_enough", "fps_in_range", "short_side_large_enough",
                                            "long_side_small_enough", "sample_rate_high_enough",
                                            "audio_not_silent", "video_not_static")} == {
        "long_enough": (3.0, None), "fps_in_range": (5, 60), "short_side_large_enough": (32, None),
        "long_side_small_enough": (None, 1024), "sample_rate_high_enough": (8000, None),
        "audio_not_silent": (-50.0, None), "video_not_static": (2.0, None)}


# check -> (a row that fails it, the detail it gets); read without GX, from the derived columns.
DETAILS = {
    "container_opens": ({"probe_error": "moov atom not found"}, "moov atom not found"),
    "header_complete": ({"fps": NAN}, "header does not give: fps"),
    "decodes_fully": ({"decodable": False, "decode_error": "frame 3: invalid data"}, "frame 3: invalid data"),
    "has_video": ({"num_video_streams": 0}, "no video stream"),
    "has_audio": ({"num_audio_streams": 0}, "no audio stream"),
    "long_enough": ({"duration_s": 9.5}, "duration 9.50 s < 10.00"),
    "fps_in_range": ({"fps": 121.0}, "121.00 fps outside [10, 120]"),
    "short_side_large_enough": ({"width": 50, "height": 80}, "50x80: short side 50 < 64"),
    "long_side_small_enough": ({"width": 80, "height": 5000}, "80x5000: long side 5000 > 4096"),
    "sample_rate_high_enough": ({"audio_sample_rate": 8000}, "audio sample rate 8000 Hz < 16000"),
    "audio_not_silent": ({"audio_rms_dbfs": -75.25}, "audio RMS -75.2 dBFS < -60.0"),
    "video_not_static": ({"mean_frame_diff": 0.1234}, "mean frame difference 0.123 < 0.5"),
    "content_unique": ({}, "duplicate of first"),
    "inside_source_root": ({"source_root": ""}, "resolves to {root}/x.mp4, outside (no source_root given)"),
}


def test_each_check_explains_its_failure_naming_the_value(tmp_path):
    by_name = {check.name: check for check in gx_checks.checks()}
    assert list(by_name) == [name for name, *_ in SUITE]
    for name, (values, detail) in DETAILS.items():
        rows = [base_row(tmp_path, "first"), {**base_row(tmp_path, "x"), "sha256": "sha-first", **values}]
        row = gx_checks.add_check_columns(pd.DataFrame(rows)).iloc[1]
        assert by_name[name].detail(row, Config()) == detail.format(root=tmp_path), name
    cfg = Config(validate=ValidateConfig(min_fps=5, max_fps=60, min_short_side=32, max_long_side=1024,
                                         min_audio_sample_rate=8000, min_audio_rms_dbfs=-50.0, min_frame_diff=2.0,
                                         min_duration_s=3.0))
    row = gx_checks.add_check_columns(pd.DataFrame([base_row(tmp_path, "x")])).iloc[0]
    assert [by_name[name].detail(row, cfg) for name in ("long_enough", "fps_in_range", "short_side_large_enough",
                                                        "long_side_small_enough", "sample_rate_high_enough",
                                                        "audio_not_silent", "video_not_static")] == [
        "duration 12.00 s < 3.00", "25.00 fps outside [5, 60]", "96x64: short side 64 < 32",
        "96x64: long side 96 > 1024", "audio sample rate 16000 Hz < 8000", "audio RMS -20.0 dBFS < -50.0",
        "mean frame difference 5.000 < 2"]


def test_failing_rows_get_their_check_s_reason_once_and_every_detail(tmp_path):
    """The step from GX's results to reasons per row, on results built by hand (real GX result classes)."""
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    def result(check, success, rows=None, exception_info=None):
        config = ExpectationConfiguration(type="expect_column_values_to_not_be_null", kwargs={"column": "row"},
                                          meta={"check": check})
        found = {} if rows is None else {"unexpected_index_list": [{"row": r, "video_id": "?"} for r in rows]}
        return ExpectationValidationResult(success=success, expectation_config=config, result=found,
                                           exception_info=exception_info)

    frame = gx_checks.add_check_columns(pd.DataFrame([
        {**base_row(tmp_path, "a"), "fps": 5.0}, {**base_row(tmp_path, "b"), "probe_error": "bad header"},
        {**base_row(tmp_path, "c"), "fps": 200.0}, base_row(tmp_path, "d")]))
    suite_result = ExpectationSuiteValidationResult(success=False, suite_name="avssl_video_sources", results=[
        result("container_opens", False, [1]),
        result("has_video", True, [3]),  # a success lists no row that matters, whatever it holds
        result("header_complete", False, [1], exception_info={"raised_exception": False}),
        result("has_audio", False),  # a failure without a row list: nothing to quarantine
        result("fps_in_range", False, [2, 0]),
    ])
    reasons, details = gx_checks._failures_by_row(suite_result, frame, Config())
    assert reasons == [["fps_out_of_range"], ["unreadable"], ["fps_out_of_range"], []]
    assert details == [["5.00 fps outside [10, 120]"], ["bad header", "header does not give: "],
                       ["200.00 fps outside [10, 120]"], []]
    suite_result.results.append(result("video_not_static", False, [0], exception_info={
        "metric": {"raised_exception": True, "exception_message": "no such column"}}))
    with pytest.raises(RuntimeError, match=r"^Great Expectations could not evaluate video_not_static: no such column$"):
        gx_checks._failures_by_row(suite_result, frame, Config())


# -- one run of the suite through the real checkpoint (last: seconds) ------------------------------------

def _fill(value, root: Path):
    return value.format(root=root, parent=root.parent) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """One run of the suite through the checkpoint over every case: (rows, outcome, docs folder)."""
    tmp = tmp_path_factory.mktemp("expectations")
    root = tmp / "media"
    rows = [{**base_row(root, name), **{k: _fill(v, root) for k, v in values.items()}}
            for name, (values, _, _) in CASES.items()]
    outcome = gx_checks.check_sources(pd.DataFrame(rows), Config(), gx_dir=tmp / "gx", docs_dir=tmp / "docs")
    return rows, outcome, tmp, root


def test_every_row_gets_exactly_its_reasons(checked):
    rows, outcome, _, _ = checked
    got = dict(zip((r["video_id"] for r in rows), outcome.reasons, strict=True))
    assert got == {name: reasons for name, (_, reasons, _) in CASES.items()}


def test_every_failure_is_explained_naming_the_value(checked):
    rows, outcome, _, root = checked
    got = dict(zip((r["video_id"] for r in rows), outcome.details, strict=True))
    assert got == {name: [_fill(d, root) for d in details] for name, (_, _, details) in CASES.items()}


def test_the_run_leaves_its_data_docs_and_a_reusable_project(checked):
    rows, outcome, tmp, _ = checked
    assert outcome.docs_index == tmp / "docs" / "index.html" and outcome.docs_index.is_file()
    # The project is file-backed, with Data Docs as its only site (relative, so the folder can move) and
    # GX's progress bars off; opening it again finds it as it was left.
    context = gx_checks._file_context(tmp / "gx", tmp / "docs")
    site = context.list_data_docs_sites()[gx_checks.SITE_NAME]
    assert list(context.list_data_docs_sites()) == [gx_checks.SITE_NAME]
    assert site["store_backend"]["base_directory"] == "../../docs"
    assert site["show_how_to_buttons"] is False and site["class_name"] == "SiteBuilder"
    bars = context.variables.progress_bars
    bars = bars if isinstance(bars, dict) else bars.to_dict()
    assert bars["globally"] is False and bars["metric_calculations"] is False
    assert (tmp / "gx" / "gx" / "great_expectations.yml").is_file()
    assert gx_checks._batch_definition(context).name == "whole_manifest"


def test_an_expectation_that_cannot_be_evaluated_is_an_error_naming_it(tmp_path):
    """GX reports a metric's error (here a column missing from the table) under the metric's key, with no
    failing row: read as a plain failure, every file would pass the check."""
    table = pd.DataFrame([base_row(tmp_path, "a")]).drop(columns=["mean_frame_diff"])
    with pytest.raises(RuntimeError, match=r'^Great Expectations could not evaluate video_not_static: '
                                           r'Error: The column "mean_frame_diff" in BatchData does not exist\.$'):
        gx_checks.check_sources(table, Config(), gx_dir=tmp_path / "gx", docs_dir=tmp_path / "docs")
