"""Data sources: local folders and globs, CSV manifests (paths, file:// and http(s):// URLs), lakeFS.

Remote sources run against real servers on 127.0.0.1: a plain http.server for manifest downloads and
tests/fake_lakefs.py, which the lakeFS SDK itself talks to, for the lakeFS source.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from fake_lakefs import FakeLakeFS, tiny_mp4_bytes
from http_file_server import LoopbackHTTPServer

from avssl_core.config import LakeFSSourceConfig, LocalSourceConfig, ManifestSourceConfig
from avssl_core.data.sources import http_download, local, manifest
from avssl_core.data.sources import lakefs as lakefs_source
from avssl_core.data.sources.common import make_video_id
from avssl_core.data.tables import SOURCE_COLUMNS
from avssl_core.errors import ConfigError, DataError

SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")


def touch(path: Path, data: bytes = b"video") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def check_rows(rows: list[dict], source: str) -> None:
    """What every source promises: all columns, unique safe ids, absolute paths, a fixed order."""
    assert rows
    for row in rows:
        assert list(row) == SOURCE_COLUMNS
        assert row["source"] == source
        assert SAFE_ID.fullmatch(row["video_id"]), row["video_id"]
        assert os.path.isabs(row["path"]) and os.path.isabs(row["source_root"])
    assert len({r["video_id"] for r in rows}) == len(rows)
    assert rows == sorted(rows, key=lambda r: (r["source_uri"], r["video_id"]))


# --- video ids ------------------------------------------------------------------------------------


def test_video_ids_are_stable_safe_and_keep_lookalike_paths_apart():
    paths = ["a b.mp4", "a_b.mp4", "x.mp4", "x.mkv", "dog/clip 1.mp4", "dog_clip 1.mp4", "ünï/çödé.webm",
             "../../etc/passwd", "d/" + "long" * 60 + ".mp4"]
    ids = [make_video_id(p) for p in paths]
    assert len(set(ids)) == len(ids)
    assert all(SAFE_ID.fullmatch(i) and len(i) <= 100 for i in ids)
    assert ids == [make_video_id(p) for p in paths]  # stable: nothing random or time-based
    assert make_video_id("dog/a.mp4").startswith("dog__a-")
    assert make_video_id("a.mp4", "10.0-20.0") != make_video_id("a.mp4")


# --- local ----------------------------------------------------------------------------------------


def test_local_folder_is_searched_recursively_with_case_insensitive_extensions(tmp_path):
    root = tmp_path / "videos"
    for name in ["a.mp4", "B.MKV", "sub/deeper/c.webm", "notes.txt", ".hidden.mp4", ".cache/d.mp4"]:
        touch(root / name)
    rows = local.list_files(LocalSourceConfig(path=str(root)), tmp_path / "raw")
    check_rows(rows, "local")
    assert sorted(Path(r["path"]).name for r in rows) == ["B.MKV", "a.mp4", "c.webm"]
    assert {r["source_root"] for r in rows} == {str(root.resolve())}
    assert {r["label"] for r in rows} == {""}  # files at mixed depths: not a class-folder layout
    assert rows == local.list_files(LocalSourceConfig(path=str(root)), tmp_path / "raw")


def test_local_class_folders_give_labels(tmp_path):
    for name in ["dog/1.mp4", "dog/2.mp4", "cat/3.avi"]:
        touch(tmp_path / "ucf" / name)
    rows = local.list_files(LocalSourceConfig(path=str(tmp_path / "ucf")), tmp_path / "raw")
    assert {Path(r["path"]).name: r["label"] for r in rows} == {"1.mp4": "dog", "2.mp4": "dog", "3.avi": "cat"}
    unlabelled = local.list_files(LocalSourceConfig(path=str(tmp_path / "ucf"), label_from_parent=False), tmp_path)
    assert {r["label"] for r in unlabelled} == {""}


def test_local_glob_uses_its_fixed_folder_as_root(tmp_path):
    root = tmp_path / "media"
    for name in ["2023/a.mp4", "2024/b.mp4", "2024/c.mkv", "d.mp4"]:
        touch(root / name)
    rows = local.list_files(LocalSourceConfig(path=f"{root}/**/*.mp4"), tmp_path / "raw")
    check_rows(rows, "local")
    assert sorted(Path(r["path"]).name for r in rows) == ["a.mp4", "b.mp4", "d.mp4"]
    assert {r["source_root"] for r in rows} == {str(root.resolve())}
    assert local.glob_root("/v/clips*/x/*.mp4") == Path("/v")


def test_local_symlinks_are_listed_by_their_own_path(tmp_path):
    root = tmp_path / "videos"
    outside = touch(tmp_path / "elsewhere" / "secret.mp4")
    touch(root / "real.mp4")
    (root / "link.mp4").symlink_to(outside)
    (root / "broken.mp4").symlink_to(tmp_path / "gone.mp4")
    rows = local.list_files(LocalSourceConfig(path=str(root)), tmp_path / "raw")
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"real.mp4", "link.mp4", "broken.mp4"}
    # Listed as the link, not its target: validate resolves it and sees it escape source_root.
    assert by_name["link.mp4"]["path"] == str(root / "link.mp4")
    assert not Path(by_name["link.mp4"]["path"]).resolve().is_relative_to(by_name["link.mp4"]["source_root"])


def test_local_errors_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="acquire.local.path is empty"):
        local.list_files(LocalSourceConfig(path=""), tmp_path)
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "nope")) + " does not exist"):
        local.list_files(LocalSourceConfig(path=str(tmp_path / "nope")), tmp_path)
    touch(tmp_path / "docs" / "readme.txt")
    with pytest.raises(DataError, match=r"no files with extensions .*1 other files were skipped"):
        local.list_files(LocalSourceConfig(path=str(tmp_path / "docs")), tmp_path)


# --- manifest: local paths and CSV shapes ---------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_manifest_relative_paths_resolve_against_the_csv_folder(tmp_path):
    lists = tmp_path / "lists"
    touch(lists / "clips" / "a.mp4")
    outside = touch(tmp_path / "other" / "b.mp4")
    csv = write_csv(lists / "videos.csv", (
        "path,label,split,start,end\n"
        "clips/a.mp4,dog,train,1.5,4\n"
        f"file://{outside},cat,validation,,\n"
        "clips/a.mp4,dog,train,5,9\n"  # a second segment of the same file is its own row
        "../../etc/passwd,,,,\n"
    ))
    rows = manifest.list_files(ManifestSourceConfig(csv=str(csv)), tmp_path / "raw")
    check_rows(rows, "manifest")
    by_uri = {(r["source_uri"], r["start_s"]): r for r in rows}
    first = by_uri[(str(lists / "clips" / "a.mp4"), 1.5)]
    assert first["path"] == first["source_uri"] == str(lists / "clips" / "a.mp4")
    assert (first["label"], first["split"], first["end_s"]) == ("dog", "train", 4.0)
    assert first["source_root"] == str(lists.resolve())
    url_row = by_uri[(str(outside), "")]
    assert url_row["path"] == str(outside) and url_row["split"] == "val"
    # An absolute path outside every declared root keeps the CSV's folder as root, so acquire refuses it ...
    assert url_row["source_root"] == str(lists.resolve())
    assert not Path(url_row["path"]).resolve().is_relative_to(url_row["source_root"])
    # ... unless acquire.manifest.allowed_roots names its folder.
    allowed = ManifestSourceConfig(csv=str(csv), allowed_roots=[str(tmp_path / "other")])
    rows_allowed = {r["source_uri"]: r for r in manifest.list_files(allowed, tmp_path / "raw")}
    assert rows_allowed[str(outside)]["source_root"] == str(outside.parent.resolve())
    escaping = by_uri[(os.path.normpath(lists / "../../etc/passwd"), "")]
    assert escaping["source_root"] == str(lists.resolve())
    assert not Path(escaping["path"]).resolve().is_relative_to(escaping["source_root"])  # validate rejects it


def test_manifest_vggsound_list_maps_onto_downloaded_files(tmp_path):
    media = tmp_path / "vggsound"
    touch(media / "---g-f_I2yQ_000001.mp4")
    touch(media / "--0PQM4-hqg_000030.mp4")
    csv = write_csv(tmp_path / "vggsound.csv",
                    "---g-f_I2yQ,1,people marching,test\n--0PQM4-hqg,30,\"waterfall burbling\",train\n")
    cfg = ManifestSourceConfig(csv=str(csv), columns=["youtube_id", "start_seconds", "label", "split"],
                               media_dir=str(media), path_template="{youtube_id}_{start_seconds:06d}.mp4",
                               start_column="")
    rows = manifest.list_files(cfg, tmp_path / "raw")
    check_rows(rows, "manifest")
    assert all(Path(r["path"]).is_file() for r in rows)
    assert {r["label"]: r["split"] for r in rows} == {"people marching": "test", "waterfall burbling": "train"}
    assert {r["start_s"] for r in rows} == {""}
    assert {r["source_root"] for r in rows} == {str(media.resolve())}
    # Full-length videos instead: the start column gives the segment, 10 s long.
    cfg.start_column, cfg.segment_duration_s, cfg.path_template = "start_seconds", 10.0, "{youtube_id}_{start_seconds:06d}.mp4"
    segments = sorted((r["start_s"], r["end_s"]) for r in manifest.list_files(cfg, tmp_path / "raw"))
    assert segments == [(1.0, 11.0), (30.0, 40.0)]


def test_manifest_audioset_comments_and_spaces(tmp_path):
    touch(tmp_path / "--PJHxphWEs_000030.mp4")
    csv = write_csv(tmp_path / "balanced_train_segments.csv", (
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
    ))
    cfg = ManifestSourceConfig(csv=str(csv), columns=["YTID", "start_seconds", "end_seconds", "positive_labels"],
                               path_template="{YTID}_{start_seconds:06d}.mp4", label_column="positive_labels",
                               start_column="start_seconds", end_column="end_seconds")
    (row,) = manifest.list_files(cfg, tmp_path / "raw")
    assert Path(row["path"]).is_file()
    assert (row["label"], row["start_s"], row["end_s"]) == ("/m/09x0r,/t/dd00088", 30.0, 40.0)


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("path,start\na.mp4,1\nb.mp4,soon\n", 3, "start 'soon' is not a number"),
        ("path,start,end\na.mp4,5,5\n", 2, "end 5.0 is not after start 5.0"),
        ("path,split\na.mp4,holdout\n", 2, "split 'holdout' is not one of"),
        ("path,label\na.mp4,dog,extra\n", 2, "3 fields, but the header names 2 columns"),
        ('path,label\n"a.mp4,dog\n', 2, "not valid CSV"),
        ("path\ns3://bucket/a.mp4\n", 2, "s3:// URLs are not supported"),
        ("path,label\n,dog\n", 2, "empty 'path'"),
    ],
)
def test_manifest_errors_name_the_csv_line(tmp_path, body, line, message):
    csv = write_csv(tmp_path / "bad.csv", body)
    with pytest.raises(DataError) as err:
        manifest.list_files(ManifestSourceConfig(csv=str(csv)), tmp_path / "raw")
    assert f"{csv}:{line}" in str(err.value) and message in str(err.value)


def test_manifest_errors_for_missing_csv_and_columns(tmp_path):
    with pytest.raises(ConfigError, match="file .*missing.csv not found"):
        manifest.list_files(ManifestSourceConfig(csv=str(tmp_path / "missing.csv")), tmp_path)
    csv = write_csv(tmp_path / "list.csv", "file,label\na.mp4,dog\n")
    with pytest.raises(DataError, match=r"no column 'path' \(its columns: \['file', 'label'\]\)"):
        manifest.list_files(ManifestSourceConfig(csv=str(csv)), tmp_path)
    with pytest.raises(DataError, match="no column 'category'"):
        manifest.list_files(ManifestSourceConfig(csv=str(csv), path_column="file", label_column="category"), tmp_path)
    with pytest.raises(ConfigError, match=r"uses columns \['youtube_id'\]"):
        manifest.list_files(ManifestSourceConfig(csv=str(csv), path_template="{youtube_id}.mp4"), tmp_path)


# --- manifest: HTTP downloads ---------------------------------------------------------------------


class FileServer(LoopbackHTTPServer):
    """Serves ``files`` (URL path -> bytes); ``fail_first`` (URL path -> statuses) answers those first."""

    def __init__(self, files: dict[str, bytes], fail_first: dict[str, list[int]] | None = None):
        self.files, self.fail_first, self.hits = files, fail_first or {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                server.hits.append(self.path)
                pending = server.fail_first.get(self.path)
                status = pending.pop(0) if pending else (200 if self.path in server.files else 404)
                body = server.files[self.path] if status == 200 else b"nope"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                self.wfile.write(body)

        self._listen(Handler)


def test_manifest_http_urls_download_once_and_failures_keep_their_row(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(http_download, "RETRY_BACKOFF_S", 0.0)
    payload = os.urandom(5000)
    files = {"/v/a.mp4": payload, "/v/flaky.mkv": b"eventually"}
    with FileServer(files, fail_first={"/v/flaky.mkv": [503]}) as server:
        csv = write_csv(tmp_path / "urls.csv", (
            f"path,label\n{server.url}/v/a.mp4,dog\n{server.url}/v/missing.mp4,cat\n{server.url}/v/flaky.mkv,\n"
        ))
        cfg = ManifestSourceConfig(csv=str(csv), download_timeout_s=5.0)
        with caplog.at_level(logging.WARNING):
            rows = manifest.list_files(cfg, tmp_path / "raw")
        check_rows(rows, "manifest")
        by_uri = {r["source_uri"]: r for r in rows}
        downloaded = by_uri[f"{server.url}/v/a.mp4"]
        assert Path(downloaded["path"]).read_bytes() == payload
        assert Path(downloaded["path"]).parent == (tmp_path / "raw" / "manifest").absolute()
        assert downloaded["source_root"] == str((tmp_path / "raw" / "manifest").resolve())
        assert Path(by_uri[f"{server.url}/v/flaky.mkv"]["path"]).read_bytes() == b"eventually"  # retried 503
        missing = by_uri[f"{server.url}/v/missing.mp4"]
        assert not Path(missing["path"]).exists() and missing["label"] == "cat"
        assert any(f"{server.url}/v/missing.mp4" in m and "404" in m for m in caplog.messages)
        assert server.hits.count("/v/missing.mp4") == 1  # a 404 is not retried

        hits_before = list(server.hits)
        again = manifest.list_files(cfg, tmp_path / "raw")
        assert server.hits[len(hits_before):] == ["/v/missing.mp4"]  # downloaded files are not fetched again
        assert again == rows


# --- lakeFS ---------------------------------------------------------------------------------------

LAKECTL_ENV = ["LAKECTL_SERVER_ENDPOINT_URL", "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
               "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "LAKECTL_CREDENTIALS_SESSION_TOKEN",
               "LAKECTL_CREDENTIALS_PROVIDER_TYPE"]


@pytest.fixture(scope="module")
def lakefs_objects() -> dict[str, bytes]:
    return {
        "videos/dog/1.mp4": tiny_mp4_bytes(),
        "videos/dog/2.mp4": os.urandom(2500),
        "videos/cat/3.MKV": os.urandom(700),
        "videos/cat/notes.txt": b"not a video",
        "videos-old/4.mp4": b"outside the prefix folder",
    }


@pytest.fixture
def fake_lakefs(lakefs_objects):
    with FakeLakeFS(page_size=2) as server:
        server.create_repository("media")
        server.commit("media", lakefs_objects)
        yield server


@pytest.fixture
def lakectl_env(fake_lakefs, monkeypatch, tmp_path):
    """Credentials in the environment only; no lakectl config file anywhere."""
    for name in LAKECTL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKECTL_CONFIG_FILE", str(tmp_path / "no-lakectl.yaml"))
    monkeypatch.setenv("LAKECTL_SERVER_ENDPOINT_URL", fake_lakefs.url)
    monkeypatch.setenv("LAKECTL_CREDENTIALS_ACCESS_KEY_ID", fake_lakefs.access_key_id)
    monkeypatch.setenv("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", fake_lakefs.secret_access_key)


def test_lakefs_lists_all_pages_at_the_resolved_commit_and_downloads_bytes(
        fake_lakefs, lakectl_env, lakefs_objects, tmp_path, monkeypatch):
    monkeypatch.setattr(lakefs_source, "CHUNK_BYTES", 1000)  # several ranged reads per object
    cfg = LakeFSSourceConfig(repository="media", ref="main", prefix="videos")
    commit = fake_lakefs.repositories["media"].branches["main"]
    skipped: list[dict] = []
    rows = lakefs_source.list_files(cfg, tmp_path / "raw", skipped)
    check_rows(rows, "lakefs")
    assert [r["source_uri"] for r in rows] == [f"lakefs://media/{commit}/{p}" for p in
                                               ["videos/cat/3.MKV", "videos/dog/1.mp4", "videos/dog/2.mp4"]]
    assert skipped == [{"path": f"lakefs://media/{commit}/videos/cat/notes.txt",
                        "reason": "extension .txt not in acquire.lakefs.extensions"}]
    assert [r["label"] for r in rows] == ["cat", "dog", "dog"]
    commit_dir = (tmp_path / "raw" / "lakefs" / "media" / commit).absolute()
    for row in rows:
        object_path = row["source_uri"].split(f"{commit}/", 1)[1]
        assert row["path"] == str(commit_dir / object_path)
        assert Path(row["path"]).read_bytes() == lakefs_objects[object_path]
        assert row["source_root"] == str(commit_dir)
    listings = [r for r in fake_lakefs.requests if r.path.endswith("/objects/ls")]
    assert len(listings) == 2 and listings[1].query["after"]  # 4 keys under videos/, 2 a page
    # Everything after resolving the ref names the commit, never the branch that may move meanwhile.
    assert all(f"/refs/{commit}/" in r.path for r in listings + fake_lakefs.object_requests())
    assert any(r.headers.get("Range") == "bytes=1000-1999" for r in fake_lakefs.object_requests())


def test_lakefs_second_run_reuses_downloads_but_replaces_a_corrupted_copy(fake_lakefs, lakectl_env, tmp_path):
    cfg = LakeFSSourceConfig(repository="media", prefix="videos/")
    rows = lakefs_source.list_files(cfg, tmp_path / "raw")
    fetched = len(fake_lakefs.object_requests())
    assert lakefs_source.list_files(cfg, tmp_path / "raw") == rows
    assert len(fake_lakefs.object_requests()) == fetched

    damaged = Path(rows[0]["path"])
    original = damaged.read_bytes()
    damaged.write_bytes(bytes(len(original)))  # same size, wrong bytes: only the checksum can tell
    lakefs_source.list_files(cfg, tmp_path / "raw")
    assert damaged.read_bytes() == original
    assert len(fake_lakefs.object_requests()) == fetched + 1


def test_lakefs_object_that_fails_to_download_keeps_its_row(fake_lakefs, lakectl_env, tmp_path, caplog):
    fake_lakefs.failing_objects.add("videos/dog/2.mp4")
    with caplog.at_level(logging.WARNING):
        rows = lakefs_source.list_files(LakeFSSourceConfig(repository="media", prefix="videos"), tmp_path / "raw")
    assert len(rows) == 3
    (failed,) = [r for r in rows if r["source_uri"].endswith("videos/dog/2.mp4")]
    assert not Path(failed["path"]).exists()  # probe reports it missing; validate quarantines it
    assert not list(Path(failed["path"]).parent.glob(".*part*"))  # no partial file left behind
    assert any("videos/dog/2.mp4" in m and "500" in m for m in caplog.messages)


def test_lakefs_resolve_commit_follows_the_branch_and_tags_pin_it(fake_lakefs, lakectl_env, tmp_path):
    cfg = LakeFSSourceConfig(repository="media", ref="main")
    first = lakefs_source.resolve_commit(cfg)
    fake_lakefs.tag("media", "v1", first)
    second = fake_lakefs.commit("media", {"videos/dog/5.mp4": b"new"})
    assert lakefs_source.resolve_commit(cfg) == second != first
    tagged = LakeFSSourceConfig(repository="media", ref="v1", prefix="videos")
    rows = lakefs_source.list_files(tagged, tmp_path / "raw")
    assert len(rows) == 3 and all(f"/{first}/" in r["source_uri"] for r in rows)


def test_lakefs_pre_signed_reads_follow_the_redirect(fake_lakefs, lakectl_env, lakefs_objects, tmp_path):
    cfg = LakeFSSourceConfig(repository="media", prefix="videos", pre_sign=True)
    rows = lakefs_source.list_files(cfg, tmp_path / "raw")
    assert all(Path(r["path"]).read_bytes() == lakefs_objects[r["source_uri"].split("/", 4)[4]] for r in rows)
    assert any(r.path.startswith("/_presigned/") for r in fake_lakefs.requests)


def test_lakefs_credentials_from_a_lakectl_config_file(fake_lakefs, monkeypatch, tmp_path):
    for name in LAKECTL_ENV:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "lakectl.yaml"
    config.write_text(
        f"credentials:\n  access_key_id: {fake_lakefs.access_key_id}\n"
        f"  secret_access_key: {fake_lakefs.secret_access_key}\n"
        "server:\n  endpoint_url: http://127.0.0.1:9/\n"  # wrong on purpose: endpoint_url overrides it
    )
    monkeypatch.setenv("LAKECTL_CONFIG_FILE", str(config))
    cfg = LakeFSSourceConfig(repository="media", prefix="videos", endpoint_url=fake_lakefs.url)
    assert len(lakefs_source.list_files(cfg, tmp_path / "raw")) == 3
    config.write_text(config.read_text().replace("http://127.0.0.1:9/", fake_lakefs.url))
    assert lakefs_source.resolve_commit(LakeFSSourceConfig(repository="media")) == \
        fake_lakefs.repositories["media"].branches["main"]


def test_lakefs_errors_say_what_to_fix(fake_lakefs, lakectl_env, monkeypatch, tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DataError, match=r"repository 'nope' not found at http://127\.0\.0\.1:\d+/api/v1"):
        lakefs_source.list_files(LakeFSSourceConfig(repository="nope"), raw)
    with pytest.raises(DataError, match=r"ref 'feature' not found in repository 'media'.*default branch is 'main'"):
        lakefs_source.list_files(LakeFSSourceConfig(repository="media", ref="feature"), raw)
    with pytest.raises(DataError, match=r"lakefs://media/\w+/empty/: no objects with extensions"):
        lakefs_source.list_files(LakeFSSourceConfig(repository="media", prefix="empty"), raw)

    monkeypatch.setenv("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(DataError, match=r"refused the credentials.*LAKECTL_CREDENTIALS_ACCESS_KEY_ID"):
        lakefs_source.list_files(LakeFSSourceConfig(repository="media"), raw)

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(DataError, match=rf"cannot reach lakeFS at http://127\.0\.0\.1:{closed_port}/api/v1"):
        lakefs_source.resolve_commit(LakeFSSourceConfig(repository="media",
                                                        endpoint_url=f"127.0.0.1:{closed_port}"))
    # An endpoint URL with credentials is named without them; in params (recorded in dvc.lock) it is refused.
    monkeypatch.setenv("LAKECTL_SERVER_ENDPOINT_URL", f"http://u:envPw123@127.0.0.1:{closed_port}")
    with pytest.raises(DataError, match=rf"cannot reach lakeFS at http://127\.0\.0\.1:{closed_port}/api/v1") as failed:
        lakefs_source.resolve_commit(LakeFSSourceConfig(repository="media"))
    assert "envPw123" not in str(failed.value)
    with pytest.raises(ConfigError, match=r"acquire.lakefs.endpoint_url holds credentials"):
        LakeFSSourceConfig(repository="media", endpoint_url="u:pw@lakefs.example.com:8000")

    for name in LAKECTL_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"no lakeFS credentials found: set LAKECTL_CREDENTIALS_ACCESS_KEY_ID"):
        lakefs_source.resolve_commit(LakeFSSourceConfig(repository="media"))
    assert not raw.exists()  # no failure left partial downloads behind


def test_lakefs_object_keys_cannot_write_outside_the_commit_folder(tmp_path):
    commit_dir = tmp_path / "c"
    assert lakefs_source.local_path(commit_dir, "a/b.mp4") == commit_dir / "a" / "b.mp4"
    for key in ["../x.mp4", "a/../../x.mp4", "/etc/x.mp4", "a/./b.mp4", "a//b.mp4", ""]:
        assert lakefs_source.local_path(commit_dir, key) is None
    assert lakefs_source.api_base_url("lakefs.example.com:8000/") == "http://lakefs.example.com:8000/api/v1"
    assert lakefs_source.api_base_url("https://lakefs.example.com/api/v1") == "https://lakefs.example.com/api/v1"
