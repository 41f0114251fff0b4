"""Run one flow here, in this process: ``python -m flows FLOW [--method M] [--set section.key=value] ...``.

The run is recorded on the server PREFECT_API_URL names (checked first: an unreachable one gets a message
naming it and what to do), or, with no server configured, on a temporary local one Prefect starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from avssl_core.errors import AvsslError
from avssl_core.orchestration.server import check_api_reachable

FLOWS = {
    "data": ("flows.data", "data_flow"),
    "pretrain": ("flows.pretrain", "pretrain_flow"),
    "evaluate": ("flows.evaluate", "evaluate_flow"),
    "ablate": ("flows.ablate", "ablate_flow"),
    "pipeline": ("flows.pipeline", "pipeline_flow"),
    "retrain": ("flows.retrain", "retrain_flow"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__.splitlines()[0])
    parser.add_argument("flow", choices=sorted(FLOWS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--method", help="pretrain / retrain: the method")
    parser.add_argument("--methods", nargs="+", help="evaluate / pipeline: the methods")
    parser.add_argument("--study", help="ablate: the study")
    parser.add_argument("--dvc", default="commit", choices=["commit", "push", "off"])
    parser.add_argument("--force", action="store_true", help="retrain: even when the data did not change")
    parser.add_argument("--refresh-cache", action="store_true", help="rerun stages whose results are cached")
    launch = parser.add_argument_group("pretrain under torchrun (flows/pretrain.py)")
    launch.add_argument("--nproc-per-node", type=int, help="processes (GPUs) per machine")
    launch.add_argument("--nnodes", type=int, help="machines; run this command on each of them")
    launch.add_argument("--rdzv-endpoint", help="host:port of the c10d rendezvous (nnodes > 1)")
    launch.add_argument("--rdzv-id", help="job id, the same on every machine (nnodes > 1)")
    args = parser.parse_args(argv)
    launch_args = ("nproc_per_node", "nnodes", "rdzv_endpoint", "rdzv_id")
    if args.flow != "pretrain" and any(getattr(args, name) is not None for name in launch_args):
        parser.error("--nproc-per-node, --nnodes, --rdzv-endpoint and --rdzv-id are for the pretrain flow")
    kwargs = {"overrides": args.overrides, "dvc": args.dvc}
    if args.flow != "ablate":
        kwargs["refresh_cache"] = args.refresh_cache
    for name in ("method", "methods", "study", *launch_args):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    if args.flow == "retrain" and args.force:
        kwargs["force"] = True
    try:
        check_api_reachable()
        module, attr = FLOWS[args.flow]
        flow = getattr(importlib.import_module(module), attr)
        state = flow(**kwargs, return_state=True)
    except AvsslError as exc:
        print(f"flows {args.flow}: error: {exc}", file=sys.stderr)
        return 2
    if not state.is_completed():
        print(f"flows {args.flow}: {state.type.value}: {state.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
