"""Open the Great Expectations Data Docs that `avssl validate` writes.

    python dashboards/datadocs.py            # print the file:// address of the Data Docs
    python dashboards/datadocs.py --serve    # serve them on http://127.0.0.1:8765 (for a remote machine,
                                             # forward the port: ssh -L 8765:127.0.0.1:8765 host)
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="data/validated/datadocs", help="Data Docs folder")
    parser.add_argument("--serve", action="store_true", help="serve over HTTP instead of printing the path")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    index = root / "index.html"
    if not index.is_file():
        print(f"{index}: no Data Docs yet; run `avssl validate` (or `dvc repro`) first", file=sys.stderr)
        return 1
    if not args.serve:
        print(index.as_uri())
        return 0
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        print(f"Data Docs at http://127.0.0.1:{args.port}/index.html (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
