"""Untrusted video lists (issue 16): nothing outside the data roots is read, no file contents are echoed,
downloads are bounded, credentials are never written.

Downloads are served by a real HTTP server on 127.0.0.1: the standard library's
``http.server.ThreadingHTTPServer`` with a handler (tests/http_file_server.py) that serves real files
honestly, without Content-Length (body ends when the connection closes), or chunked with no length at all.
The data flow through Prefect is searched for the same planted secrets in test_flows.py.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from http_file_server import Server
from media_factory import write_clip
from planted_secrets import URL_PASSWORD, URL_TOKEN, leaks, plant_secrets

from avssl_core.config import ManifestSourceConfig, load_config
from avssl_core.data.probe import decode_stats, probe_file
from avssl_core.data.sources import http_download, manifest
from avssl_core.data.sources.redact import redact_url, scrub
from avssl_core.data.tables import read_table
from avssl_core.stages.acquire import run_acquire
from avssl_core.stages.segment import run_segment
from avssl_core.stages.validate import run_validate

# Text that stands for the bytes of files outside the root; it must never appear in any output.
OUTSIDE_CONTENT = "root:x:0:0:outside-content-marker"
STAGE_TIMEOUT_S = 120


def _config(tmp_path: Path, *overrides: str):
    paths = [f"paths.{key}={tmp_path / value}" for key, value in {
        "data_root": "data", "raw_dir": "data/raw", "acquired_dir": "data/acquired",
        "validated_dir": "data/validated", "clips_dir": "data/clips", "metrics_dir": "metrics"}.items()]
    return load_config(None, [*paths, "acquire.workers=1", "validate.workers=1", "segment.workers=1", *overrides])


def _bounded(fn, *args, fifos: list[Path] = ()):
    """Run ``fn(*args)`` in a thread; fail (and unblock a reader stuck on one of ``fifos``) if it takes
    too long."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 -- re-raised below in the test's thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(STAGE_TIMEOUT_S)
    if thread.is_alive():
        for fifo in fifos:  # a writer lets the blocked open() return, so the thread can end
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                assert exc.errno == errno.ENXIO  # nobody reading this one
        pytest.fail(f"{fn.__name__} did not finish in {STAGE_TIMEOUT_S} s: it opened a FIFO outside the root")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _all_output_text(*folders: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for folder in folders
                     for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


class OpenedPaths:
    """Every path opened through Python (builtins.open, os.open: the audit event "open") while recording.

    Audit hooks cannot be removed, so one hook for the session feeds whichever recorder is active.
    FFmpeg's own opens (av.open) are not seen here: the FIFO catches those, since opening it blocks.
    """

    active: list[str] | None = None

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if event == "open" and cls.active is not None and isinstance(args[0], str | bytes | os.PathLike):
            cls.active.append(os.fsdecode(args[0]))


sys.addaudithook(OpenedPaths.hook)


@pytest.fixture
def opened_paths():
    OpenedPaths.active = []
    yield OpenedPaths.active
    OpenedPaths.active = None


@pytest.fixture
def hostile_world(tmp_path):
    """A media_dir with one good clip, and a list whose other rows point outside it, every way we know."""
    media = tmp_path / "media"
    write_clip(media / "good.mp4", seconds=2.0, seed=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("passwd", "shadow", "hostname"):
        (outside / name).write_text(OUTSIDE_CONTENT + "\n")
    (outside / "shadow").chmod(0)  # unreadable to anyone but root (and the tests run as root)
    for name in ("fifo.mp4", "fifo2.mp4"):
        os.mkfifo(outside / name)  # opening one for reading blocks until a writer comes: the test would hang
    (media / "link.mp4").symlink_to(outside / "passwd")
    (media / "link_to_fifo.mp4").symlink_to(outside / "fifo.mp4")
    (media / "etcdir").symlink_to(outside, target_is_directory=True)
    (media / "notes.mp4").write_text(OUTSIDE_CONTENT + " but inside the root\n")  # inside: opened, not echoed
    rows = ["good.mp4", "../outside/passwd", str(outside / "shadow"), "link.mp4", "link_to_fifo.mp4",
            str(outside / "fifo.mp4"), f"file://{outside / 'fifo2.mp4'}", "etcdir/hostname", "notes.mp4"]
    csv = tmp_path / "list.csv"
    csv.write_text("path\n" + "\n".join(rows) + "\n")
    cfg = _config(tmp_path, "acquire.source=manifest", f"acquire.manifest.csv={csv}",
                  f"acquire.manifest.media_dir={media}", "validate.min_duration_s=1.0",
                  "validate.min_valid_fraction=0.0")
    return cfg, outside, tmp_path


@pytest.mark.timeout(STAGE_TIMEOUT_S * 3)
def test_rows_outside_the_roots_are_refused_without_being_opened(hostile_world, opened_paths, caplog):
    cfg, outside, tmp_path = hostile_world
    with caplog.at_level(logging.INFO):
        # Opening a FIFO would block: the bound turns that into a failure.
        acquired = _bounded(run_acquire, cfg, fifos=[outside / "fifo.mp4", outside / "fifo2.mp4"])
        validated = _bounded(run_validate, cfg, fifos=[outside / "fifo.mp4", outside / "fifo2.mp4"])
    assert not [p for p in opened_paths if Path(p).resolve().is_relative_to(outside)]
    assert acquired["num_files"] == 9 and validated["valid"] == 1
    manifest_rows = read_table(Path(cfg.paths.acquired_dir) / "manifest.csv").set_index("source_uri")
    refused = manifest_rows[manifest_rows["probe_error"].str.startswith("refused: resolves to ")]
    assert len(refused) == 7  # every row but the good clip and the text file inside the root
    assert (refused["sha256"].fillna("") == "").all()  # not even hashed
    quarantine = read_table(Path(cfg.paths.validated_dir) / "quarantine.csv").set_index("video_id")
    outside_rows = quarantine[quarantine["reasons"] == "outside_data_root"]
    assert len(outside_rows) == 7  # quarantined for where they point, not as "unreadable"
    assert all(f"outside {tmp_path / 'media'}" in d for d in outside_rows["details"])
    notes = quarantine[quarantine["path"].str.endswith("notes.mp4")]
    size = (tmp_path / "media" / "notes.mp4").stat().st_size
    assert notes["details"].tolist() == [f"not a media file: text ({size} bytes)"]
    # No file's bytes anywhere: tables, metrics, Data Docs, GX results, logs.
    everything = _all_output_text(tmp_path / "data", tmp_path / "metrics") + caplog.text
    assert OUTSIDE_CONTENT[:10] not in everything


@pytest.mark.timeout(STAGE_TIMEOUT_S * 2)
def test_allowed_roots_admit_absolute_paths_elsewhere(hostile_world):
    cfg, outside, tmp_path = hostile_world
    (outside / "fifo.mp4").unlink()
    cfg.acquire.manifest.allowed_roots = [str(outside)]
    write_clip(outside / "fifo.mp4", seconds=1.0, seed=2)  # a real clip where the FIFO was
    acquired = _bounded(run_acquire, cfg, fifos=[outside / "fifo2.mp4"])
    rows = read_table(Path(cfg.paths.acquired_dir) / "manifest.csv")
    by_uri = dict(zip(rows["source_uri"], rows["probe_error"], strict=True))
    assert by_uri[str(outside / "fifo.mp4")] == ""  # an absolute path under an allowed root is probed
    assert by_uri[str(outside / "shadow")].startswith("not a media file: text")
    assert by_uri[f"{outside / 'fifo2.mp4'}"] == "not a regular file"  # file:// too; a FIFO is not opened
    # Every declared root is allowed, whichever way a row reaches it (relative path, symlink).
    assert by_uri[str(tmp_path / "media" / "link.mp4")].startswith("not a media file: text")
    assert not [e for e in by_uri.values() if e.startswith("refused")]
    assert acquired["num_probe_errors"] == 6  # 4 text files, notes.mp4 and fifo2: good.mp4, fifo.mp4 and its link open


@pytest.mark.timeout(STAGE_TIMEOUT_S)
def test_a_playlist_inside_the_root_cannot_make_ffmpeg_open_what_it_names(tmp_path):
    """FFmpeg's HLS demuxer opens the files a playlist lists (here a FIFO outside the root: opening it
    blocks); source media are opened with only self-contained container demuxers allowed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "segment.ts")
    playlist = tmp_path / "media" / "list.m3u8"
    playlist.parent.mkdir()
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{outside / 'segment.ts'}\n#EXT-X-ENDLIST\n")
    fifos = [outside / "segment.ts"]
    assert _bounded(probe_file, playlist, fifos=fifos)["probe_error"].startswith("not a media file: text")
    assert _bounded(decode_stats, playlist, fifos=fifos)["decodable"] is False


# --- bounded downloads ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_downloads_are_capped_by_content_length_while_streaming_and_per_run(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(http_download, "RETRY_BACKOFF_S", 0.0)
    small, big = os.urandom(100_000), os.urandom(600_000)
    files = {"/small.mp4": small, "/big.mp4": big, "/big_nolength.mp4": big, "/big_chunked.mp4": big,
             "/b1.mp4": small, "/b2.mp4": small, "/b3.mp4": small}
    mode = {"/big_nolength.mp4": "no_length", "/big_chunked.mp4": "chunked"}
    with Server(files, mode) as server:
        csv = tmp_path / "urls.csv"
        names = ["small", "big", "big_nolength", "big_chunked"]
        csv.write_text("path\n" + "".join(f"{server.url}/{n}.mp4\n" for n in names))
        cfg = ManifestSourceConfig(csv=str(csv), download_timeout_s=10.0, download_retries=0,
                                   max_download_bytes=300_000)
        with caplog.at_level(logging.WARNING):
            rows = {r["source_uri"].rsplit("/", 1)[1]: r for r in manifest.list_files(cfg, tmp_path / "raw")}
        assert Path(rows["small.mp4"]["path"]).read_bytes() == small and rows["small.mp4"]["source_error"] == ""
        assert rows["big.mp4"]["source_error"] == (
            "download refused: refused: Content-Length 600000 bytes exceeds acquire.manifest.max_download_bytes "
            "(300000 bytes)")
        for name in ("big_nolength.mp4", "big_chunked.mp4"):
            assert rows[name]["source_error"].startswith(
                "download refused: stopped: the download passed acquire.manifest.max_download_bytes (300000 bytes)")
        for name in ("big.mp4", "big_nolength.mp4", "big_chunked.mp4"):  # removed, partial files included
            assert not Path(rows[name]["path"]).exists()
            assert any(name in m and "download refused" in m for m in caplog.messages)
        assert sorted(p.name for p in (tmp_path / "raw" / "manifest").iterdir()) == sorted(
            [Path(rows["small.mp4"]["path"]).name, Path(rows["small.mp4"]["path"]).name + ".source.json"])

        # The run's budget: 250 kB lets two 100 kB files through, the third would pass it.
        csv.write_text("path\n" + "".join(f"{server.url}/b{i}.mp4\n" for i in (1, 2, 3)))
        budget = ManifestSourceConfig(csv=str(csv), download_retries=0, download_budget_bytes=250_000)
        rows = {r["source_uri"].rsplit("/", 1)[1]: r for r in manifest.list_files(budget, tmp_path / "raw2")}
        assert [rows[f"b{i}.mp4"]["source_error"] for i in (1, 2)] == ["", ""]
        assert rows["b3.mp4"]["source_error"].startswith(
            "download refused: refused: Content-Length 100000 bytes exceeds what is left of "
            "acquire.manifest.download_budget_bytes (50000 bytes)")
        assert server.hits.count("/b3.mp4") == 1


def test_only_http_and_file_urls_are_listed(tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("path\nftp://host/a.mp4\n")
    with pytest.raises(Exception, match=r"ftp:// URLs are not supported"):
        manifest.list_files(ManifestSourceConfig(csv=str(csv)), tmp_path / "raw")
    assert http_download.download("ftp://host/a.mp4", tmp_path / "a.mp4", 1.0, 0).reason == \
        "only http/https URLs are downloaded"


def test_urls_are_recorded_without_credentials():
    url = "https://alice:pa55w0rd@cdn.example.com:8443/v/a.mp4?X-Amz-Signature=abc123def#frag"
    assert redact_url(url) == "https://cdn.example.com:8443/v/a.mp4?REDACTED"
    message = scrub(f"GET {url} failed: user alice:pa55w0rd, signature X-Amz-Signature=abc123def", url)
    assert "pa55w0rd" not in message and "abc123def" not in message
    assert manifest.download_name(url) == manifest.download_name(url.replace("alice:pa55w0rd@", ""))
    assert "pa55w0rd" not in manifest.download_name(url) and "abc123" not in manifest.download_name(url)


# --- secrets never written ------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_credentials_never_reach_outputs_or_logs(tmp_path, monkeypatch, caplog, capfd):
    """acquire -> validate -> segment of a list whose URL carries a password and a token, with every
    credential variable set; then every file written and every log line is searched for each secret."""
    plant_secrets(monkeypatch)
    clip = write_clip(tmp_path / "served" / "clip.mp4", seconds=2.0, seed=3)
    media = tmp_path / "media"
    write_clip(media / "local.mp4", seconds=2.0, seed=4)
    with Server({"/v/clip.mp4": clip.read_bytes()}) as server:
        host = server.url.removeprefix("http://")
        csv = tmp_path / "list.csv"
        csv.write_text("path\nlocal.mp4\n"
                       f"http://bob:{URL_PASSWORD}@{host}/v/clip.mp4?token={URL_TOKEN}\n"
                       f"http://bob:{URL_PASSWORD}@{host}/v/gone.mp4?token={URL_TOKEN}\n")
        cfg = _config(tmp_path, "acquire.source=manifest", f"acquire.manifest.csv={csv}",
                      f"acquire.manifest.media_dir={media}", "acquire.manifest.download_retries=0",
                      "validate.min_duration_s=1.0", "segment.clip_seconds=1.0", "segment.short_side=64")
        with caplog.at_level(logging.DEBUG):
            run_acquire(cfg)
            validated = run_validate(cfg)
            segmented = run_segment(cfg)
    assert validated["valid"] == 2 and segmented["num_clips"] >= 2  # the download did work
    clips = pd.read_csv(Path(cfg.paths.clips_dir) / "index.csv")
    assert f"{server.url}/v/clip.mp4?REDACTED" in set(clips["source_uri"])
    written = _all_output_text(tmp_path / "data", tmp_path / "metrics")
    out, err = capfd.readouterr()
    assert leaks({"files": written, "log": caplog.text, "stdout": out, "stderr": err}) == []
