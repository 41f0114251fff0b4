"""Atomic writes: all or nothing under the final name, with ordinary permissions."""

import os
import stat

import pytest

from avssl_core.io_utils import atomic_path, write_json_atomic


def test_failed_write_leaves_nothing(tmp_path):
    dest = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        assert tmp.suffix == ".mp4"  # muxers choose the container from the extension
        tmp.write_bytes(b"half a clip")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_and_respects_umask(tmp_path):
    dest = tmp_path / "sub" / "summary.json"
    write_json_atomic(dest, {"a": 1})
    write_json_atomic(dest, {"a": 2})
    assert dest.read_text().strip() == '{\n  "a": 2\n}'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in dest.parent.iterdir()] == ["summary.json"]
