"""Show the ablation studies of `avssl ablate` in optuna-dashboard.

    python dashboards/optuna_dashboard.py            # print the optuna-dashboard command and its address
    python dashboards/optuna_dashboard.py --serve    # serve it on http://127.0.0.1:8080/dashboard/ (for a
                                                     # remote machine: ssh -L 8080:127.0.0.1:8080 host)
    python dashboards/optuna_dashboard.py --storage postgresql://user:pass@host:5432/optuna

The storage defaults to ablate.storage in params.yaml (a SQLite file under data/ablate/).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from avssl_core.ablate.storage import absolute_url, display_url, open_storage  # noqa: E402
from avssl_core.config import DEFAULT_PARAMS, load_config  # noqa: E402
from avssl_core.errors import AvsslError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameters file (default: params.yaml)")
    parser.add_argument("--storage", help="Optuna storage URL (default: ablate.storage)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--serve", action="store_true", help="serve the dashboard instead of printing the command")
    args = parser.parse_args(argv)
    try:
        url = args.storage or load_config(args.params).ablate.storage
        storage = open_storage(url, must_exist=True)
    except AvsslError as exc:
        print(f"optuna dashboard: error: {exc}", file=sys.stderr)
        return 1
    studies = [s.study_name for s in storage.get_all_studies()]
    shown = display_url(absolute_url(url))
    address = f"http://{args.host}:{args.port}/dashboard/"
    print(f"studies: {', '.join(studies) or 'none yet'}")
    if not args.serve:
        print(f"optuna-dashboard {shlex.quote(shown)} --host {args.host} --port {args.port}")
        print(f"then open {address}")
        return 0
    import optuna_dashboard

    print(f"optuna-dashboard at {address} (Ctrl-C to stop)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
