"""Where media may live: every source row names its data root, and nothing resolving outside it is read.

Video lists often come from elsewhere (a public list, a colleague's CSV), so a row such as
``../../etc/passwd``, ``/etc/shadow`` or a symlink to ``/etc/hostname`` must be refused before a single
byte of it is read. Resolving a path reads only directory entries and link targets (lstat, readlink),
never the file itself, so a FIFO or an unreadable file outside the root is refused without being opened.
The reason names where the path points, never what the file holds.
"""

from __future__ import annotations

import os
from pathlib import Path


def resolved(path: str | os.PathLike) -> Path:
    """``path`` with every symlink and ``..`` resolved; a missing tail is kept as written."""
    return Path(os.path.realpath(os.fspath(path)))


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    return resolved(path).is_relative_to(resolved(root))


def outside_root_reason(path: str | os.PathLike, root: str | os.PathLike | None) -> str:
    """Empty when ``path`` resolves inside ``root``; else why it is refused. Reads no file contents."""
    if not root:
        return "refused: no data root declared for this file"  # nothing to check against: refuse, not trust
    target, base = resolved(path), resolved(root)
    if target.is_relative_to(base):
        return ""
    return f"refused: resolves to {target}, outside the data root {base}"
