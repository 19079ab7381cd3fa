"""The ``robustness`` check: accuracy under common corruptions, 5 severities each.

Corruption error and mean corruption error (mCE) follow Hendrycks &
Dietterich 2019, section 3: for corruption c, CE_c = sum_s E_{s,c} /
sum_s E^ref_{s,c}, with E the top-1 error at severity s and ``ref`` a
reference model; mCE is the mean of CE_c over corruptions. Relative mCE
measures the degradation beyond clean error: sum_s (E_{s,c} - E_clean) /
sum_s (E^ref_{s,c} - E^ref_clean), averaged over c.

A ratio is only as meaningful as its denominator. A corruption enters mCE
only where the reference's corrupted error is significantly above zero, and
relative mCE only where the reference's degradation is: the lower bound of
its 95% bootstrap interval (paired over the test examples) is above zero, that
is, above half of one test example's worth of error.
Without that, a reference that barely degrades turns noise into ratios of
-1.8e10 (seen on a table); a metric left with no corruption is reported as
not applicable, with the reason, instead of a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ..data.corruptions import CORRUPTIONS, SEVERITIES
from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from ..stats import bootstrap, bootstrap_interval, resample_counts, unseen_rate


def corruption_errors(errors: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """CE_c for each corruption: summed errors over severities, relative to the reference (NaN where the reference makes none)."""
    return {c: float(np.sum(errors[c]) / np.sum(reference[c])) if np.sum(reference[c]) > 0 else float("nan") for c in errors}


def mean_corruption_error(errors: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """mCE: the mean of CE_c (Hendrycks & Dietterich 2019)."""
    return float(np.mean(list(corruption_errors(errors, reference).values())))


def relative_mean_corruption_error(
    errors: Mapping[str, np.ndarray], clean: float, reference: Mapping[str, np.ndarray], reference_clean: float
) -> float:
    """Relative mCE: degradation from clean error, relative to the reference's.

    Only meaningful where the reference degrades; callers pass the corruptions where it significantly does.
    """
    ratios = [np.sum(np.asarray(errors[c]) - clean) / np.sum(np.asarray(reference[c]) - reference_clean) for c in errors]
    return float(np.mean(ratios))


def mean_ratio(numerators: np.ndarray, denominators: np.ndarray, min_denominator: float) -> np.ndarray:
    """Mean over the last axis of ``numerators / denominators``; NaN where any denominator is not above ``min_denominator``.

    A resample in which the reference does not degrade has no ratio (it is left out of the interval) rather than a
    ratio to 1e-16, the remainder floating-point subtraction leaves of a zero, which gave intervals of -5.7e12.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominators > min_denominator, numerators / denominators, np.nan).mean(-1)


@register_check
class Robustness(Check):
    """How accuracy degrades under the corruptions of the task's modality."""

    name = "robustness"
    metrics = declare(
        Metric("corruption_accuracy", True, "accuracy averaged over every corruption and severity", scale="proportion"),
        Metric("worst_corruption_accuracy", True, "accuracy under the corruption that hurts most (averaged over severities)", scale="proportion"),
        Metric("mce", False, "mean corruption error relative to the reference model (Hendrycks & Dietterich 2019)", scale="amount"),
        Metric("relative_mce", False, "degradation from clean error relative to the reference model's", scale="real"),
    )
    covers = "corrupted or shifted inputs (noise, blur, a different sensor or population)"

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("worst_corruption_accuracy")
        return f"{e.details.get('worst_corruption', '?').replace('_', ' ')}: accuracy {e.interval_text()}" if e else ""
    views = ("clean", "corrupt:*")

    def __init__(self, *, reference: str | None = None, severities: tuple[int, ...] | list[int] = SEVERITIES) -> None:
        bad = [s for s in severities if s not in SEVERITIES]
        if bad or not severities:
            raise ValueError(f"severities must be a non-empty subset of 1-5, got {list(severities)}")
        self.reference = reference
        self.severities = tuple(severities)

    def requests(self, task, evaluated: tuple[str, ...] = ("test",)) -> set[tuple[str, str, bool]]:
        """The corrupted views at the severities asked for only: the others would be forward passes nobody reads."""
        asked = {f"@{s}" for s in self.severities}
        return {r for r in super().requests(task, evaluated) if not r[1].startswith("corrupt:") or r[1][r[1].rindex("@"):] in asked}

    def _correct(self, candidate, context: CheckContext) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Clean correctness (N,) and, per corruption, correctness (S, N)."""
        clean = context.predict(candidate)
        per = {}
        for kind in CORRUPTIONS.get(context.task.modality, {}):
            rows = [context.predict(candidate, view=f"corrupt:{kind}@{s}") for s in self.severities]
            per[kind] = np.stack([p.predicted == p.labels for p in rows])
        return clean.predicted == clean.labels, per

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        clean, per = self._correct(candidate, context)
        if not per:
            return []
        kinds = list(per)
        stacked = np.stack([per[k] for k in kinds])  # (C, S, N)
        reference = context.candidates.get(self.reference) if self.reference else context.reference
        ref_name = reference.name if reference is not None else candidate.name
        ref_clean, ref_per = (clean, per) if reference is None or reference is candidate else self._correct(reference, context)
        ref_stacked = np.stack([ref_per[k] for k in kinds])

        n, C = len(clean), len(kinds)
        cand, ref = stacked.astype(np.float64), ref_stacked.astype(np.float64)  # (C, S, N) correct or not

        def stats(index: np.ndarray) -> np.ndarray:
            counts = resample_counts(index, n).T / n  # (N, b)
            acc = cand @ counts  # (C, S, b)
            err, ref_err = 1 - acc, 1 - ref @ counts
            clean_err, ref_clean_err = 1 - clean @ counts, 1 - ref_clean @ counts  # (b,)
            # Per corruption, over the severities: accuracy, errors (candidate, reference) and degradations.
            return np.column_stack([acc.mean((0, 1)), acc.mean(1).T, err.sum(1).T, ref_err.sum(1).T,
                                    (err - clean_err).sum(1).T, (ref_err - ref_clean_err).sum(1).T])  # (b, 1 + 5C)

        full = stats(np.arange(n)[None])[0]
        replicates = bootstrap(stats, n, n_boot=context.n_boot, seed=context.seed)
        parts = {name: slice(1 + i * C, 1 + (i + 1) * C) for i, name in enumerate(("acc", "err", "ref_err", "deg", "ref_deg"))}
        low, high = bootstrap_interval(replicates, full)
        # Which denominators are meaningfully above zero; the same for every candidate (same reference, same resamples).
        # Summed errors move in steps of one example (1/n); "above zero" is above half a step, so the 1e-16 that
        # floating-point subtraction leaves of a zero never counts as a denominator.
        step = 0.5 / n
        ce_kinds = low[parts["ref_err"]] > step
        rel_kinds = low[parts["ref_deg"]] > step

        def ratio(num: str, den: str, use: np.ndarray, values: np.ndarray) -> np.ndarray:
            return mean_ratio(values[..., parts[num]][..., use], values[..., parts[den]][..., use], step)

        mce = (ratio("err", "ref_err", ce_kinds, full), ratio("err", "ref_err", ce_kinds, replicates)) if ce_kinds.any() else None
        rel = (ratio("deg", "ref_deg", rel_kinds, full), ratio("deg", "ref_deg", rel_kinds, replicates)) if rel_kinds.any() else None
        accuracy = stacked.mean(-1)  # (C, S)
        errors = {k: 1 - accuracy[i] for i, k in enumerate(kinds)}
        ref_errors = {k: 1 - ref_stacked[i].mean(-1) for i, k in enumerate(kinds)}
        by_kind = accuracy.mean(1)
        w = int(np.argmin(by_kind))
        a = parts["acc"].start + w
        details = {
            "severities": list(self.severities),
            "clean_accuracy": float(clean.mean()),
            "accuracy": {k: accuracy[i].round(6).tolist() for i, k in enumerate(kinds)},
            "reference": ref_name,
            "corruption_error": {k: (None if np.isnan(v) else v) for k, v in corruption_errors(errors, ref_errors).items()},
        }
        out = [
            self.evidence(candidate, "corruption_accuracy", accuracy.mean(), (low[0], high[0]), view="corrupt:*",
                          details=details, figures=("accuracy_vs_severity",)),
            # The interval of that worst corruption's accuracy; a bootstrap of the minimum over corruptions is biased low.
            self.evidence(candidate, "worst_corruption_accuracy", by_kind.min(), (low[a], high[a]), view="corrupt:*",
                          details={"worst_corruption": kinds[w], "by_corruption": dict(zip(kinds, by_kind.round(6).tolist()))}),
        ]
        not_applicable = {}
        for metric, result, used, what in (("mce", mce, ce_kinds, "corrupted error"), ("relative_mce", rel, rel_kinds, "degradation from clean error")):
            left_out = [k for k, u in zip(kinds, used) if not u]
            reason = (f"the reference '{ref_name}' shows no {what} significantly above zero under "
                      f"{', '.join(k.replace('_', ' ') for k in left_out)} (95% interval reaches 0), so a ratio to it is not defined")
            if result is None:
                not_applicable[metric] = reason
                continue
            point, draws = result
            itself = ref_name == candidate.name  # 1 by definition, not an estimate: no interval to give
            interval = None if itself else bootstrap_interval(draws, point)
            if interval is not None and interval[0] == interval[1]:
                interval = _unseen_disagreement(point, full, parts, used, metric, n, stacked.shape[1])
            out.append(self.evidence(candidate, metric, point, interval, view="corrupt:*",
                                     details={"reference": ref_name, "corruptions": [k for k, u in zip(kinds, used) if u],
                                              **({"note": "1 by definition: this candidate is the reference"} if itself else {}),
                                              **({"left_out": left_out, "left_out_reason": reason} if left_out else {})}))
        if not_applicable:
            text = "; ".join(f"{m} not applicable: {r}" for m, r in not_applicable.items())
            out.append(replace(self.skipped(candidate, text), view="corrupt:*", details={"reason": text, "metrics": not_applicable}))
        return out


def _unseen_disagreement(point: float, full: np.ndarray, parts: dict[str, slice], used: np.ndarray, metric: str, n: int,
                         severities: int) -> tuple[float, float]:
    """The interval of a ratio to the reference when the two models agree on every corrupted example here.

    Every resample then gives the same ratio, and the bootstrap says certain.
    What the data bound is the share of examples on which the two could
    disagree: at most ``u``, Clopper-Pearson's upper bound for 0 of ``n``,
    per view. A corruption's summed error over ``severities`` moves by at
    most ``severities * u`` (its degradation by twice that: the clean error
    moves too), so each ratio moves by at most that over the reference's
    denominator, and their mean by the mean of those.
    """
    u = unseen_rate(n)
    name = "ref_err" if metric == "mce" else "ref_deg"
    reach = severities * u * (1 if metric == "mce" else 2) / full[parts[name]][used]
    half = float(np.mean(reach))
    return point - half, point + half
