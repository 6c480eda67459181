"""The retrain rule: at each fire of the check schedule, does a retrain pay off now?

One implementation, three callers: `greenops gate` (one decision from live telemetry), the simulator
(thousands of decisions on simulated windows, as arrays) and the backtest (a decision per replayed
fire). Everything here works on numpy arrays or plain floats alike.

At a fire the rule weighs what a fresh model would buy over the serving one until the next fire
against what a retrain costs now:

- value, objective ``slo``: the expected SLO misses a fresh model avoids over the coming windows,
  from the forecaster (the next window's effect forecast from the latest one, the age curve, the
  forecast errors). A hard period, where fresh and old models both miss, has no value; nor has an
  easy one, where both meet. The SLO's error budget scales the value by ``exp(budget_gain * debt)``,
  debt = (misses - allowed misses) / allowed misses over the last BUDGET_WINDOWS windows, clipped
  to [-MAX_DISCOUNT_DEBT, MAX_BOOST_DEBT]: budget left discounts the value (the allowance is spent
  deliberately), an overspent budget raises it, but boundedly, so the tuned price still decides.
  (An earlier floor price on a spent budget retrained at almost every fire through hard periods,
  where misses come whatever the model's age: 2,146 retrains on NOAA against 96 for the best fixed
  cadence.)
- value, objective ``cost``: the expected quality a fresh model gains over the coming windows, in
  windows of quality (the unit of C_alpha).
- price: ``threshold`` times the cost of a retrain now relative to an average one: its energy times the
  grid's carbon intensity at this hour over the mean, so at a dirty hour the rule waits for a greener
  fire unless the benefit is large.

Retrain when value > price, and always when waiting for the next fire would leave the serving model
older than maxInterval (or older than any age the history has seen). ``threshold=None`` is a plain
cron: retrain at every fire.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the forecaster module imports scikit-learn; the rule itself needs only numpy
    from controller.forecast.quality import QualityForecaster

BUDGET_WINDOWS = 30  # the error budget the rule watches: about a month of daily windows
BUDGET_SPEND = 0.8  # the rule aims to spend this share of the error budget: the rest absorbs forecast errors
# With no budget used the value is discounted by at most exp(-3 * budget_gain) (~1/20): spending the allowance
# is the point of an SLO. An overspent budget multiplies it by at most exp(budget_gain) (~2.7): enough to
# lean towards retraining, not enough to make a hard period's small forecast benefit look worth a retrain.
MAX_DISCOUNT_DEBT = 3.0
MAX_BOOST_DEBT = 1.0


@dataclass(frozen=True)
class RuleParams:
    """What Optuna tunes and the merge request renders; ``threshold=None``: retrain at every fire."""

    threshold: float | None = None
    budget_gain: float = 1.0  # fixed, not tuned: how strongly the error budget scales the value
    objective: str = "slo"  # slo | cost

    @property
    def gated(self) -> bool:
        return self.threshold is not None

    def describe(self) -> str:
        if self.threshold is None:
            return "retrain at every fire"
        unit = "expected SLO misses avoided" if self.objective == "slo" else "windows of quality gained"
        return f"retrain when a fresh model buys more than {self.threshold:g} {unit} per average retrain"


PLAIN_CRON = RuleParams()  # every fire retrains: what a schedule without the gate does


def allowed_misses(compliance: float) -> float:
    """Misses the rule plans to spend over BUDGET_WINDOWS windows."""
    return (1 - compliance) * BUDGET_WINDOWS * BUDGET_SPEND


def budget_padding(compliance: float, known: int) -> list[float]:
    """Misses assumed for the windows before the data (``known`` windows are observed): on plan, so a short
    history starts with zero debt rather than in debt."""
    return [allowed_misses(compliance) / BUDGET_WINDOWS] * max(0, BUDGET_WINDOWS - known)


def budget_debt(missed: np.ndarray | float, compliance: float) -> np.ndarray:
    """(misses - allowed) / allowed: negative while budget is left, positive once it is overspent."""
    allowed = max(allowed_misses(compliance), 1e-9)
    return (np.asarray(missed, dtype=float) - allowed) / allowed


@dataclass(frozen=True)
class Situation:
    """What the rule sees at one fire (arrays broadcast together: one lane per simulated path)."""

    serving_age_days: np.ndarray | float  # age of the serving model now
    fresh_age_days: np.ndarray | float  # age a retrain started now would have once it is ready (its duration)
    latest_effect: np.ndarray | float  # effect of the latest window that ended
    days_since_latest: np.ndarray | float  # from the end of that window to now
    debt: np.ndarray | float  # (misses - allowed) / allowed over the recent windows; 0 without data
    cost_ratio: np.ndarray | float  # energy x grid intensity of a retrain now / those of an average retrain
    days_to_next_fire: float  # the value counts the windows until the next chance to retrain
    window_days: float
    max_age_days: float  # the serving model must never be older than this (maxInterval, or the data)
    replicate: np.ndarray | int = 0  # which age curve of the forecaster each lane uses


@dataclass(frozen=True)
class Verdict:
    retrain: np.ndarray  # bool
    forced: np.ndarray  # bool: maxInterval or unknown ages, whatever the value
    value: np.ndarray
    price: np.ndarray


def _coming_windows(situation: Situation) -> np.ndarray:
    """Mid-points (days from now) of the windows until the next fire: at least one window."""
    count = max(1, int(np.ceil(situation.days_to_next_fire / situation.window_days - 1e-9)))
    return (np.arange(count) + 0.5) * situation.window_days


def value_of_retraining(params: RuleParams, forecaster: "QualityForecaster", situation: Situation,
                        target: float) -> np.ndarray:
    """Expected misses avoided (slo) or quality gained (cost) over the coming windows by a fresh model."""
    total: np.ndarray | float = 0.0
    serving, fresh = np.asarray(situation.serving_age_days), np.asarray(situation.fresh_age_days)
    for offset in _coming_windows(situation):
        old = forecaster.curve(serving + offset, situation.replicate)
        new = forecaster.curve(fresh + offset, situation.replicate)
        if params.objective == "cost":
            total = total + (new - old)
            continue
        steps = np.maximum((np.asarray(situation.days_since_latest) + offset) / situation.window_days, 1.0)
        effect = forecaster.next_effect(situation.latest_effect, steps)
        total = total + (forecaster.miss_probability(effect + old, target)
                         - forecaster.miss_probability(effect + new, target))
    if params.objective == "slo":
        debt = np.asarray(situation.debt, dtype=float)
        total = total * np.exp(params.budget_gain * np.clip(debt, -MAX_DISCOUNT_DEBT, MAX_BOOST_DEBT))
    return np.asarray(total)


def decide_now(params: RuleParams, forecaster: "QualityForecaster | None", situation: Situation,
               target: float, thresholds: np.ndarray | None = None) -> Verdict:
    """The rule's verdict at one fire, lane by lane; ``thresholds`` (one per lane) replaces the rule's price
    when the simulator replays several prices of the same rule at once."""
    forced = np.asarray(situation.serving_age_days) + situation.days_to_next_fire > situation.max_age_days + 1e-9
    if params.threshold is None or forecaster is None:
        return Verdict(np.ones_like(forced), forced, np.full(forced.shape, np.inf), np.zeros(forced.shape))
    value = value_of_retraining(params, forecaster, situation, target)
    price = (params.threshold if thresholds is None else thresholds) * np.asarray(situation.cost_ratio, dtype=float)
    return Verdict(np.asarray(forced | (value > price)), forced, value, np.asarray(price))
