"""Statistics shared by checks, the audit, the report and serving: intervals, the bootstrap, confusion matrices, multiple testing.

This package imports nothing of assay, so any layer may use it.

Three methods, each where it fits:

* single proportions (accuracy, a class's recall, a group's rate, a slice's
  error) get the Clopper-Pearson exact interval (Clopper & Pearson 1934): it
  never collapses to a point at 0 or n successes, where the bootstrap claims
  a certainty the data cannot give (``1.000 [1.000, 1.000]`` from 269
  examples), and its coverage is at least 95% at every true proportion. The
  Wilson score interval is narrower but dips to 84% coverage just inside 0
  and 1 (Brown, Cai & DasGupta 2001), where good models' accuracies live; it
  stays here for Newcombe's paired interval, which is built on it;
* other statistics get the nonparametric bootstrap (Efron & Tibshirani 1993):
  resample the examples with replacement and recompute; the interval is the
  bias-corrected percentile interval (Efron 1981; Efron & Tibshirani 1993,
  sec. 14.3), which moves the percentiles against the bias the resamples
  show. Resamples are drawn in chunks so memory stays bounded as the split
  grows;
* for a handful of repeated runs (labelled draws), the Student-t interval of
  their mean.

Every interval holds its point estimate; where that is guaranteed by
construction rather than by the method, the code says why.
"""

from .bootstrap import Statistic, bootstrap, bootstrap_interval, mean_interval, percentile_interval, resample_counts
from .confusion import confusion_matrices
from .intervals import mean_of_proportions_interval, paired_difference_interval, proportion_interval, t_interval, unseen_rate, wilson_interval
from .multiple import holm

__all__ = [
    "Statistic", "bootstrap", "bootstrap_interval", "confusion_matrices", "holm", "mean_interval", "mean_of_proportions_interval",
    "paired_difference_interval", "percentile_interval", "proportion_interval", "resample_counts", "t_interval", "unseen_rate", "wilson_interval",
]
