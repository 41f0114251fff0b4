"""The Great Expectations suite that source videos must meet, and what each failure means for a file.

Each check is one GX expectation tagged with a reason code. GX evaluates the suite on the manifest joined
with decode statistics; every failing row an expectation lists (by row number) gets that check's reason
code and a detail naming the offending value. Imports GX (seconds), so callers import this module lazily.

Nulls: GX column expectations skip null values, which would let a file with an unknown value pass. So
checks that need a value only run on rows where it must exist (row conditions), and a separate check
quarantines opened files whose header leaves a needed value unknown.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.row_conditions import Column

from avssl_core.config import Config
from avssl_core.data.roots import is_inside, resolved
from avssl_core.offline_html import make_offline


log = logging.getLogger(__name__)
SUITE_NAME = "avssl_video_sources"
CHECKPOINT_NAME = "avssl_validate"
DATASOURCE_NAME = "avssl_tables"
ASSET_NAME = "sources"
SITE_NAME = "avssl_datadocs"
ROW = "row"  # the row number, reported by GX for each failing row

REASON_CODES = [
    "unreadable",
    "not_decodable",
    "no_video",
    "no_audio",
    "too_short",
    "fps_out_of_range",
    "resolution_out_of_range",
    "low_sample_rate",
    "silent_audio",
    "static_video",
    "duplicate",
    "outside_data_root",
]

INSIDE = Column("inside_source_root") == True  # noqa: E712 -- builds a GX condition, not a Python comparison
OPENED = Column("opened") == True  # noqa: E712
HAS_VIDEO = OPENED & (Column("num_video_streams") >= 1)
HAS_AUDIO = OPENED & (Column("num_audio_streams") >= 1)
DECODED = Column("decodable") == True  # noqa: E712


@dataclass(frozen=True)
class Check:
    name: str  # unique; stored in the expectation's meta to find the check again in the results
    reason: str  # one of REASON_CODES
    expectation: Callable[[Config], Any]  # cfg -> GX expectation
    detail: Callable[[pd.Series, Config], str]  # failing row -> human explanation naming the value


def _num(value: Any, fmt: str = ".2f") -> str:
    return "unknown" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def checks() -> list[Check]:
    """The suite's checks, in the order reasons are reported. A function rather than a module constant so
    that mutation testing (mutmut changes function bodies only) reaches every column and threshold here."""
    return [
        # A file outside its root was never opened: it is quarantined for where it points, not as unreadable.
        Check("container_opens", "unreadable",
              lambda c: gx.expectations.ExpectColumnValuesToBeInSet(column="probe_error", value_set=[""],
                                                                    row_condition=INSIDE),
              lambda r, c: r["probe_error"]),
        Check("header_complete", "unreadable",
              lambda c: gx.expectations.ExpectColumnValuesToBeInSet(column="missing_properties", value_set=[""]),
              lambda r, c: f"header does not give: {r['missing_properties']}"),
        Check("decodes_fully", "not_decodable",
              lambda c: gx.expectations.ExpectColumnValuesToBeInSet(column="decodable", value_set=[True],
                                                                    row_condition=OPENED),
              lambda r, c: r["decode_error"]),
        Check("has_video", "no_video",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(column="num_video_streams", min_value=1,
                                                                       row_condition=OPENED),
              lambda r, c: "no video stream"),
        Check("has_audio", "no_audio",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(column="num_audio_streams", min_value=1,
                                                                       row_condition=OPENED),
              lambda r, c: "no audio stream"),
        Check("long_enough", "too_short",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(column="duration_s", min_value=c.min_duration_s,
                                                                       row_condition=OPENED),
              lambda r, c: f"duration {_num(r['duration_s'])} s < {c.min_duration_s:.2f}"),
        Check("fps_in_range", "fps_out_of_range",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(
                  column="fps", min_value=c.validate.min_fps, max_value=c.validate.max_fps, row_condition=HAS_VIDEO),
              lambda r, c: f"{_num(r['fps'])} fps outside [{c.validate.min_fps:g}, {c.validate.max_fps:g}]"),
        Check("short_side_large_enough", "resolution_out_of_range",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(
                  column="short_side", min_value=c.validate.min_short_side, row_condition=HAS_VIDEO),
              lambda r, c: f"{_num(r['width'], '.0f')}x{_num(r['height'], '.0f')}: short side "
                           f"{_num(r['short_side'], '.0f')} < {c.validate.min_short_side}"),
        Check("long_side_small_enough", "resolution_out_of_range",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(
                  column="long_side", max_value=c.validate.max_long_side, row_condition=HAS_VIDEO),
              lambda r, c: f"{_num(r['width'], '.0f')}x{_num(r['height'], '.0f')}: long side "
                           f"{_num(r['long_side'], '.0f')} > {c.validate.max_long_side}"),
        Check("sample_rate_high_enough", "low_sample_rate",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(
                  column="audio_sample_rate", min_value=c.validate.min_audio_sample_rate, row_condition=HAS_AUDIO),
              lambda r, c: f"audio sample rate {_num(r['audio_sample_rate'], '.0f')} Hz < "
                           f"{c.validate.min_audio_sample_rate}"),
        # Loudness and motion exist only for files that decoded; files that did not are quarantined anyway.
        Check("audio_not_silent", "silent_audio",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(
                  column="audio_rms_dbfs", min_value=c.validate.min_audio_rms_dbfs, row_condition=DECODED),
              lambda r, c: f"audio RMS {_num(r['audio_rms_dbfs'], '.1f')} dBFS < {c.validate.min_audio_rms_dbfs:.1f}"),
        Check("video_not_static", "static_video",
              lambda c: gx.expectations.ExpectColumnValuesToBeBetween(
                  column="mean_frame_diff", min_value=c.validate.min_frame_diff, row_condition=DECODED),
              lambda r, c: f"mean frame difference {_num(r['mean_frame_diff'], '.3f')} < {c.validate.min_frame_diff:g}"),
        Check("content_unique", "duplicate",
              lambda c: gx.expectations.ExpectColumnValuesToBeNull(column="duplicate_of"),
              lambda r, c: f"duplicate of {r['duplicate_of']}"),
        Check("inside_source_root", "outside_data_root",
              lambda c: gx.expectations.ExpectColumnValuesToBeInSet(column="inside_source_root", value_set=[True]),
              lambda r, c: f"resolves to {r['resolved_path']}, outside {r['source_root'] or '(no source_root given)'}"),
    ]


def build_suite(cfg: Config) -> gx.ExpectationSuite:
    suite = gx.ExpectationSuite(name=SUITE_NAME, meta={"notes": "avssl: usable audio-visual source videos"})
    for check in checks():
        expectation = check.expectation(cfg)
        expectation.meta = {"check": check.name, "reason": check.reason}
        expectation.description = f"{check.name} (quarantine reason: {check.reason})"
        suite.add_expectation(expectation)
    return suite


def add_check_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The columns the expectations read besides the manifest's: derived so each check is one column."""
    frame = table.reset_index(drop=True).copy()
    frame[ROW] = range(len(frame))
    frame["opened"] = frame["probe_error"] == ""
    for col in ("width", "height", "duration_s", "fps", "audio_sample_rate"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["short_side"] = frame[["width", "height"]].min(axis=1, skipna=False)
    frame["long_side"] = frame[["width", "height"]].max(axis=1, skipna=False)
    frame["missing_properties"] = [_missing_properties(row) for _, row in frame.iterrows()]
    # Resolving reads directory entries and links only, never the file (avssl_core.data.roots).
    frame["resolved_path"] = [str(resolved(path)) for path in frame["path"]]
    frame["inside_source_root"] = [isinstance(root, str) and bool(root) and is_inside(path, root)
                                   for path, root in zip(frame["path"], frame["source_root"], strict=True)]
    frame["duplicate_of"] = _first_copies(frame)
    return frame


def _missing_properties(row: pd.Series) -> str:
    if not row["opened"]:
        return ""  # already quarantined as unreadable for the probe error itself
    needed = ["duration_s"]
    if row["num_video_streams"] >= 1:
        needed += ["fps", "width", "height"]
    if row["num_audio_streams"] >= 1:
        needed += ["audio_sample_rate"]
    return ", ".join(col for col in needed if pd.isna(row[col]))


def _first_copies(frame: pd.DataFrame) -> list[str | None]:
    """For each row, the video_id of an earlier row with the same bytes or decoded content, else None.

    Only opened files take part: two empty files share a sha256 but are reported as unreadable.
    The first occurrence in manifest order is kept; later ones are duplicates of it.
    """
    first_by_key: dict[tuple[str, str], str] = {}
    duplicate_of: list[str | None] = []
    for _, row in frame.iterrows():
        keys = [("sha256", row["sha256"]), ("content", row["content_hash"])]
        keys = [k for k in keys if row["opened"] and isinstance(k[1], str) and k[1]]
        original = next((first_by_key[k] for k in keys if k in first_by_key), None)
        duplicate_of.append(original)
        for key in keys:
            first_by_key.setdefault(key, str(row["video_id"]))
    return duplicate_of


@dataclass
class CheckOutcome:
    reasons: list[list[str]]  # per row, the reason codes (empty: valid)
    details: list[list[str]]  # per row, one human explanation per reason
    docs_index: Path


def check_sources(table: pd.DataFrame, cfg: Config, *, gx_dir: Path, docs_dir: Path) -> CheckOutcome:
    """Run the suite through a checkpoint in the GX project at ``gx_dir``; Data Docs go to ``docs_dir``."""
    frame = add_check_columns(table)
    context = _file_context(gx_dir, docs_dir)
    batch_definition = _batch_definition(context)
    suite = context.suites.add_or_update(build_suite(cfg))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=SUITE_NAME, data=batch_definition, suite=suite))
    checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
        name=CHECKPOINT_NAME,
        validation_definitions=[validation],
        actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])],
        # COMPLETE: every failing row, not a sample; row + video_id make the Data Docs name the files.
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW, "video_id"]},
    ))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    (suite_result,) = result.run_results.values()
    reasons, details = _failures_by_row(suite_result, frame, cfg)
    docs_index = docs_dir / "index.html"
    if not docs_index.exists():
        raise RuntimeError(f"Great Expectations did not write Data Docs at {docs_index}")
    # GX's pages load their styles and scripts from CDNs: point them at shipped copies (offline machines).
    for remote in make_offline(docs_dir):
        log.warning("Data Docs still load from the network: %s", remote)
    return CheckOutcome(reasons, details, docs_index)


def _file_context(gx_dir: Path, docs_dir: Path):
    """A file-backed GX project under ``gx_dir`` whose only Data Docs site is ``docs_dir``."""
    gx_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    # Relative to the GX root so the project still works when the data folder moves (DVC checkouts).
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": os.path.relpath(docs_dir, context.root_directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    bars = context.variables.progress_bars  # a ProgressBarsConfig, or a dict once read back from the YAML
    if isinstance(bars, ProgressBarsConfig):
        bars = bars.to_dict()
    if not bars or bars.get("globally", True):
        # GX draws one bar per metric batch; the stage already shows a bar over files.
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    if context.list_data_docs_sites() != {SITE_NAME: site}:
        for name in list(context.list_data_docs_sites()):
            context.delete_data_docs_site(name)
        context.add_data_docs_site(SITE_NAME, site)
    return context


def _batch_definition(context):
    """The whole-DataFrame batch of the pandas asset, created on the first run and reused after."""
    datasource = context.data_sources.add_or_update_pandas(DATASOURCE_NAME)
    if ASSET_NAME not in {asset.name for asset in datasource.assets}:
        datasource.add_dataframe_asset(ASSET_NAME)
    asset = datasource.get_asset(ASSET_NAME)
    if "whole_manifest" not in {bd.name for bd in asset.batch_definitions}:
        asset.add_batch_definition_whole_dataframe("whole_manifest")
    return asset.get_batch_definition("whole_manifest")


def _failures_by_row(suite_result: ExpectationSuiteValidationResult, frame: pd.DataFrame, cfg: Config):
    reasons: list[list[str]] = [[] for _ in range(len(frame))]
    details: list[list[str]] = [[] for _ in range(len(frame))]
    by_name = {check.name: check for check in checks()}
    for result in suite_result.results:
        check = by_name[result.expectation_config.meta["check"]]
        error = _raised_exception(result.exception_info or {})
        if error is not None:
            raise RuntimeError(f"Great Expectations could not evaluate {check.name}: {error}")
        if result.success:
            continue
        for failing in result.result.get("unexpected_index_list") or []:
            row = int(failing[ROW])
            if check.reason not in reasons[row]:
                reasons[row].append(check.reason)
            details[row].append(check.detail(frame.iloc[row], cfg))
    return reasons, details


def _raised_exception(info: dict) -> str | None:
    """The error GX met evaluating one expectation, else None. GX puts an error of the expectation itself
    at the top level, but errors of the metrics it computes (a column missing from the table) under one
    key per metric; such a result only says "not successful" with no failing row, so a file would pass."""
    for entry in [info, *(value for value in info.values() if isinstance(value, dict))]:
        if entry.get("raised_exception"):
            message = entry.get("exception_message") or entry.get("exception_traceback") or "unknown error"
            return str(message).strip().splitlines()[-1]
    return None
