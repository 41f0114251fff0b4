"""One Optuna study per ablation table of the papers: the grid it searches, the method hyper-parameters each
grid point becomes, and the figure the paper reports for it.

The paper figures come from full-scale training (Kinetics, AudioSet, UCF101); a tiny-budget study on the
synthetic clips reproduces the *shape* of a table (which rows win), not its numbers. They are printed beside
ours so a reader can compare rankings, never values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from avssl_core.errors import ConfigError

GridValue = str | int | float | bool | None


@dataclass(frozen=True)
class TrialPlan:
    """What one grid point trains: method hyper-parameters over the preset, and the epochs it runs."""

    hparams: dict[str, Any]
    epochs: int | None  # None: the ablation budget's epochs


@dataclass(frozen=True)
class StudyDefinition:
    key: str
    method: str  # a name in avssl_core.methods.registry.METHODS
    source: str  # the paper table or figure it reproduces
    grid: dict[str, tuple[GridValue, ...]]  # an Optuna GridSampler search space
    protocol: str  # the held-out pretext protocol of the default objective (stages/pretrain.PROTOCOLS)
    plan: Callable[[dict[str, GridValue], int | None], TrialPlan]  # (grid point, budget epochs) -> plan
    paper_metric: str = ""  # what the paper's figures measure
    paper: dict[tuple[GridValue, ...], float] = field(default_factory=dict)  # grid point (grid order) -> figure
    min_epochs: int = 1  # the fewest budget epochs that still express every grid point

    @property
    def size(self) -> int:
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n

    def paper_value(self, params: dict[str, GridValue]) -> float | None:
        return self.paper.get(tuple(params.get(name) for name in self.grid))

    def check_budget(self, epochs: int | None) -> None:
        if epochs is not None and epochs < self.min_epochs:
            raise ConfigError(f"ablate.epochs={epochs}: study {self.key!r} needs at least {self.min_epochs} "
                              f"epochs to express every row of {self.source}")


def _direct(params: dict[str, GridValue], epochs: int | None) -> TrialPlan:
    """Grid parameters that are method hyper-parameters as they are."""
    return TrialPlan(hparams=dict(params), epochs=None)


# -- AVTS Table 1: negatives and curriculum ----------------------------------------------------------------
# The paper trains 90 epochs; the curriculum's second stage starts after epoch 50 (AVTS Table 1, Sec. 2.4).
AVTS_SECOND_STAGE_AT = 50 / 90
# Each row of Table 1: (share of hard negatives, when they start as a share of the run or None for never,
# share of the run trained). "easy_first_stage" is the table's "easy, epochs 1-50" row: the first stage alone.
AVTS_ROWS: dict[str, tuple[float, float | None, float]] = {
    "easy": (0.0, None, 1.0),
    "easy75_hard25": (0.25, 0.0, 1.0),
    "hard": (1.0, 0.0, 1.0),
    "easy_first_stage": (0.0, None, AVTS_SECOND_STAGE_AT),
    "curriculum_easy75_hard25": (0.25, AVTS_SECOND_STAGE_AT, 1.0),
    "curriculum_hard": (1.0, AVTS_SECOND_STAGE_AT, 1.0),
}


def second_stage_epoch(epochs: int) -> int:
    """The first epoch of the curriculum's second stage for a run of ``epochs``: 50/90 of the way, and at
    least one epoch into each stage."""
    return max(1, min(epochs - 1, round(epochs * AVTS_SECOND_STAGE_AT)))


def _avts_plan(params: dict[str, GridValue], epochs: int | None) -> TrialPlan:
    if epochs is None:
        raise ConfigError("study avts_curriculum needs ablate.epochs: the curriculum is placed within it")
    hard_share, start, run_share = AVTS_ROWS[str(params["negatives"])]
    stage_two = second_stage_epoch(epochs)
    hard_from = None if start is None else (0 if start == 0.0 else stage_two)
    return TrialPlan(hparams={"hard_share": hard_share, "hard_from_epoch": hard_from},
                     epochs=stage_two if run_share < 1.0 else epochs)


STUDIES: dict[str, StudyDefinition] = {
    "avts_curriculum": StudyDefinition(
        key="avts_curriculum", method="avts", source="AVTS Table 1 (Korbar et al. 2018)",
        grid={"negatives": tuple(AVTS_ROWS)}, protocol="easy", plan=_avts_plan,
        # Table 1 tests on easy negatives only; so does the "easy" protocol.
        paper_metric="AVTS accuracy % on Kinetics test (easy negatives)",
        paper={("easy",): 69.0, ("easy75_hard25",): 58.9, ("hard",): 52.3, ("easy_first_stage",): 67.2,
               ("curriculum_easy75_hard25",): 78.4, ("curriculum_hard",): 65.7},
        min_epochs=2),
    "coattention_heads_depth": StudyDefinition(
        key="coattention_heads_depth", method="coattention", source="co-attention Table 3 (Cheng et al. 2020)",
        grid={"depth": (1, 2), "heads": (4, 8, 16)}, protocol="shifted", plan=_direct,
        paper_metric="AVS accuracy % (shifted-audio negatives)",
        paper={(1, 4): 64.2, (1, 8): 65.3, (1, 16): 64.6, (2, 4): 64.1, (2, 8): 64.8, (2, 16): 64.3}),
    "cmac_lambda": StudyDefinition(
        key="cmac_lambda", method="cmac", source="CMAC Fig. 4 (Min et al. 2021)",
        # The figure's exact abscissae are not in the text; it spans 0 to past 1.5, the best value.
        grid={"lambda_ac": (0.0, 0.5, 1.0, 1.5, 2.0)}, protocol="easy", plan=_direct,
        paper_metric="UCF101 top-1 % (fine-tuned); Sec. 4.3.2 states only lambda 0 and 1.5",
        paper={(0.0,): 85.5, (1.5,): 87.2}),
    "cmac_pyramid": StudyDefinition(
        key="cmac_pyramid", method="cmac", source="CMAC Table 2 (Min et al. 2021)",
        # The table holds five of these nine points; the full cross product shows the interaction too.
        grid={"normalization": ("none", "softmax", "cosine"), "pyramid_scales": (1, 2, 3)},
        protocol="easy", plan=_direct,
        paper_metric="UCF101 top-1 % (fine-tuned)",
        paper={("none", 1): 85.8, ("softmax", 1): 86.6, ("cosine", 1): 87.0, ("cosine", 2): 87.2,
               ("cosine", 3): 86.9}),
}


def get_study(key: str) -> StudyDefinition:
    if key not in STUDIES:
        known = ", ".join(f"{k} ({s.source})" for k, s in STUDIES.items())
        raise ConfigError(f"unknown study {key!r}; known studies: {known}")
    return STUDIES[key]
