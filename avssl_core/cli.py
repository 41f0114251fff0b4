"""The ``avssl`` command line: one subcommand per stage, each a thin call into avssl_core.stages.

DVC stages run these commands; Prefect tasks and the tests call the same stage functions directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from avssl_core.config import DEFAULT_PARAMS, load_config
from avssl_core.errors import AvsslError


def _stage_synth(cfg, args):
    from avssl_core.synth.generate import generate_dataset

    out = Path(args.out) if args.out else Path(cfg.paths.raw_dir) / "synthetic"
    return generate_dataset(out, cfg.synth)


def _stage_acquire(cfg, args):
    from avssl_core.stages.acquire import run_acquire

    return run_acquire(cfg)


def _stage_validate(cfg, args):
    from avssl_core.stages.validate import run_validate

    return run_validate(cfg)


def _stage_segment(cfg, args):
    from avssl_core.stages.segment import run_segment

    return run_segment(cfg)


def _stage_pretrain(cfg, args):
    from avssl_core.stages.pretrain import run_pretrain

    return run_pretrain(cfg, args.method, args.preset)


def _stage_evaluate(cfg, args):
    from avssl_core.stages.evaluate import run_evaluate

    return run_evaluate(cfg, args.method)


def _stage_report(cfg, args):
    from avssl_core.stages.report import run_report

    return run_report(cfg)


def _stage_ablate(cfg, args):
    import dataclasses

    from avssl_core.stages.ablate import run_ablate

    changes = {k: v for k, v in (("storage", args.storage), ("trials", args.trials)) if v is not None}
    if changes:
        cfg = dataclasses.replace(cfg, ablate=dataclasses.replace(cfg.ablate, **changes))
    return run_ablate(cfg, args.study)


def _stage_data(cfg, args):
    return {
        "acquire": _stage_acquire(cfg, args),
        "validate": _stage_validate(cfg, args),
        "segment": _stage_segment(cfg, args),
    }


STAGES = {
    "synth": (_stage_synth, "write the built-in synthetic audio-visual videos"),
    "acquire": (_stage_acquire, "gather and probe source videos into data/acquired/manifest.csv"),
    "validate": (_stage_validate, "check videos with Great Expectations; quarantine the bad ones"),
    "segment": (_stage_segment, "cut valid videos into fixed-length clips with aligned audio"),
    "data": (_stage_data, "acquire, validate and segment in one go"),
    "pretrain": (_stage_pretrain, "pretrain a method on the clips (resumes from its latest checkpoint)"),
    "evaluate": (_stage_evaluate, "downstream evaluation of a pretrained method, and of its random-init baseline"),
    "report": (_stage_report, "leaderboard of every evaluated method: dashboards/report/index.html and leaderboard.md"),
    "ablate": (_stage_ablate, "run or resume an Optuna ablation study (one per table of the papers)"),
}


class _HelpFormatter(argparse.HelpFormatter):
    """Fills ``{methods}`` in a help text with the registry's method names. The registry (and torch) is
    imported only when a help text asks for it, so commands that need neither start fast."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        if text and "{methods}" in text:
            from avssl_core.methods.registry import METHODS

            text = text.replace("{methods}", " | ".join(METHODS))
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avssl", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(DEFAULT_PARAMS), help="parameters file (default: params.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a parameter, e.g. --set segment.clip_seconds=4.2 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, (_, help_text) in STAGES.items():
        sp = sub.add_parser(name, help=help_text, formatter_class=_HelpFormatter)
        if name == "synth":
            sp.add_argument("--out", help="output folder (default: <paths.raw_dir>/synthetic)")
        if name == "pretrain":
            sp.add_argument("--method", help="{methods} (default: pretrain.method)")
            sp.add_argument("--preset", help="tiny | paper (default: pretrain.preset)")
        if name == "evaluate":
            sp.add_argument("--method", help="the pretrained method to evaluate: {methods} (default: pretrain.method)")
        if name == "ablate":
            sp.add_argument("--study", help="avts_curriculum | coattention_heads_depth | cmac_lambda | cmac_pyramid "
                                            "(default: ablate.study)")
            sp.add_argument("--trials", type=int, help="trials the study should hold (default: ablate.trials, "
                                                       "or its whole grid)")
            sp.add_argument("--storage", help="Optuna storage URL (default: ablate.storage, a SQLite file)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = load_config(args.params, args.overrides)
        summary = STAGES[args.stage][0](cfg, args)
    except AvsslError as exc:
        print(f"avssl {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
