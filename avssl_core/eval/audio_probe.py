"""Audio classification by a linear probe on frozen audio features (AVTS Sec. 3.3, CMAC Sec. 4.2).

Each file gives ``n`` equally spaced sub-clips; the classifier (a one-vs-rest linear SVM, AVTS's choice, or
multinomial logistic regression) is trained on sub-clip features with the file's label, and a test file's
prediction is the class with the highest mean sub-clip score (AVTS Sec. 3.3). Features are standardised
with training statistics. The regularisation C is chosen from a grid by cross-validation on the training
data only: grouped so that sub-clips of one file (and, for ESC-50, one fold) never sit on both sides of a
CV split. The test fold is never seen while choosing C or fitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, GroupKFold, LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

CLASSIFIERS = ("linear_svm", "logistic")


@dataclass(frozen=True)
class ProbeSettings:
    classifier: str = "linear_svm"
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    cv_folds: int = 3  # when the training data has no folds of its own (DCASE): grouped k-fold over files
    max_iter: int = 5000
    seed: int = 0


def _estimator(s: ProbeSettings):
    if s.classifier == "linear_svm":
        # dual="auto" solves the primal when sub-clips outnumber feature dimensions: ~100x faster there.
        clf = LinearSVC(dual="auto", max_iter=s.max_iter, random_state=s.seed)
    elif s.classifier == "logistic":
        clf = LogisticRegression(max_iter=s.max_iter)
    else:
        raise ValueError(f"probe classifier {s.classifier!r}: choose one of {CLASSIFIERS}")
    return make_pipeline(StandardScaler(), clf)


def fit_probe(features: np.ndarray, labels: np.ndarray, cv_groups: np.ndarray, settings: ProbeSettings
              ) -> GridSearchCV:
    """Fit on training sub-clips only, C chosen by cross-validation over ``cv_groups`` (the unit CV holds
    out: an ESC-50 fold, or a file). Up to 5 groups (ESC-50's 4 training folds): leave one group out, i.e.
    the dataset's own folds; more (DCASE files): grouped ``cv_folds``-fold CV."""
    groups = np.asarray(cv_groups)
    distinct = np.unique(groups)
    if len(distinct) < 2:
        raise ValueError("the probe's cross-validation needs at least 2 groups of training files")
    if len(distinct) <= max(settings.cv_folds, 5):
        splitter = LeaveOneGroupOut()
    else:
        splitter = GroupKFold(n_splits=settings.cv_folds)
    search = GridSearchCV(_estimator(settings), {f"{_estimator(settings).steps[-1][0]}__C": list(settings.c_grid)},
                          cv=splitter, scoring="accuracy", refit=True, n_jobs=1, error_score="raise")
    search.fit(features, labels, groups=groups)
    return search


def chosen_c(search: GridSearchCV) -> float:
    return float(next(v for k, v in search.best_params_.items() if k.endswith("__C")))


def file_predictions(scores: np.ndarray, classes: np.ndarray, files: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average sub-clip scores per file and take the best class: (file ids ascending, predicted labels)."""
    ids = np.unique(files)
    scores = scores if scores.ndim == 2 else np.stack([-scores, scores], axis=1)  # binary: one column
    predicted = np.array([classes[int(np.argmax(scores[files == f].mean(0)))] for f in ids])
    return ids, predicted


def probe_split(train_x: np.ndarray, train_y: np.ndarray, train_groups: np.ndarray, test_x: np.ndarray,
                test_y: np.ndarray, test_files: np.ndarray, settings: ProbeSettings) -> dict[str, float]:
    """One train/test division: file-level accuracy on the test files, the chosen C and its CV accuracy."""
    search = fit_probe(train_x, train_y, train_groups, settings)
    ids, predicted = file_predictions(search.decision_function(test_x), search.classes_, test_files)
    truth = np.array([test_y[test_files == f][0] for f in ids])
    return {"accuracy": float(np.mean(predicted == truth)), "C": chosen_c(search),
            "cv_accuracy": float(search.best_score_), "test_files": int(len(ids))}


def summarize(results: Sequence[dict[str, float]]) -> dict[str, float]:
    return {"accuracy": float(np.mean([r["accuracy"] for r in results]))}
