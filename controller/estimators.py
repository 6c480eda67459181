"""scikit-learn behind one module: the monotone curve the forecaster fits, the classifiers the backtest
and the demo train. Nothing else imports sklearn, so its version and options are chosen here. The
classifiers are imported when first built: `greenops gate` needs only the isotonic fit, and every
import counts towards its couple of seconds."""

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

Classifier = Any  # a fitted or unfitted scikit-learn classifier (sklearn ships no type hints)
Curve = IsotonicRegression  # a fitted decreasing_curve: predict(ages) gives quality


def _forest(seed: int) -> Classifier:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=20, max_depth=10, n_jobs=1, random_state=seed)


def _tree(seed: int) -> Classifier:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=8, random_state=seed)


def _boosting(seed: int) -> Classifier:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=50, random_state=seed)


def _scaled_logistic(seed: int) -> Classifier:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


CLASSIFIERS: dict[str, Callable[[int], Classifier]] = {
    "forest": _forest, "tree": _tree, "hgb": _boosting, "logistic": _scaled_logistic}


def decreasing_curve(ages: np.ndarray, values: np.ndarray) -> IsotonicRegression:
    """The monotone decreasing fit of ``values`` against ``ages`` (flat beyond the data): quality by age."""
    return IsotonicRegression(increasing=False, out_of_bounds="clip").fit(ages, values)


def decreasing_curve_at(ages: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """decreasing_curve evaluated at ``grid``."""
    return np.asarray(decreasing_curve(ages, values).predict(grid), dtype=float)


def plain_logistic(features: np.ndarray, labels: np.ndarray) -> Classifier:
    """A logistic regression fitted on unscaled features: the demo's small models."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500).fit(features, labels)
