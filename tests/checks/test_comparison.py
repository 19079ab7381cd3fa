"""comparison: paired differences and McNemar's exact test."""

import numpy as np
import pytest
from scipy.stats import binomtest

from assay.checks.comparison import Comparison, mcnemar_exact


def test_mcnemar_counts_discordant_pairs():
    ref = np.array([1, 1, 1, 0, 0, 1, 1, 1], bool)
    cand = np.array([1, 0, 0, 0, 1, 0, 1, 1], bool)
    b, c, p = mcnemar_exact(ref, cand)
    assert (b, c) == (3, 1)
    assert p == pytest.approx(binomtest(3, 4, 0.5).pvalue)
    assert mcnemar_exact(ref, ref)[2] == 1.0


def test_compares_a_child_with_its_parent(cnn, mlp, digits, context, tmp_path):
    from assay.recipes import RecipeContext, make_recipe

    child = make_recipe("quantize", {"parent": "cnn"}, "x").make(
        "cnn-int8", RecipeContext(task=digits, work_dir=tmp_path, candidates={"cnn": cnn}, progress=False)
    )
    context.candidates = {"mlp": mlp, "cnn": cnn, "cnn-int8": child}
    evidence = {e.metric: e for e in Comparison().run(child, context)}
    drop = evidence["accuracy_drop"]
    ours, theirs = context.predict(child), context.predict(cnn)
    expected = (theirs.predicted == theirs.labels).mean() - (ours.predicted == ours.labels).mean()
    assert drop.value == pytest.approx(expected)
    assert drop.details["against"] == "cnn" and drop.details["relation"] == "parent"
    assert drop.low <= drop.value <= drop.high
    assert drop.details["verdict"] == "no significant difference"  # int8 of a small head changes almost nothing
    from assay.checks.calibration import brier_loss, expected_calibration_error, nll_loss

    rise = lambda f: f(ours.probs, ours.labels) - f(theirs.probs, theirs.labels)  # noqa: E731
    assert evidence["ece_rise"].value == pytest.approx(rise(expected_calibration_error), abs=1e-12)
    assert evidence["brier_loss_rise"].value == pytest.approx(rise(lambda p, y: brier_loss(p, y).mean()), abs=1e-12)
    assert evidence["nll_loss_rise"].value == pytest.approx(rise(lambda p, y: nll_loss(p, y).mean()), abs=1e-12)
    assert evidence["nll_loss_rise"].low <= evidence["nll_loss_rise"].value <= evidence["nll_loss_rise"].high
    # The reference itself is skipped with a reason; others compare with it.
    assert Comparison().run(mlp, context)[0].metric == "skipped"
    assert Comparison().run(cnn, context)[0].details["against"] == "mlp"


def test_corruption_accuracy_is_compared_on_the_views_the_study_computed(cnn, mlp, digits, context, tmp_path):
    from dataclasses import replace

    from assay.recipes import RecipeContext, make_recipe

    child = make_recipe("prune", {"parent": "cnn", "method": "magnitude", "sparsity": 0.6, "steps": 1, "epochs_per_step": 1}, "x").make(
        "cnn-sparse", RecipeContext(task=digits, work_dir=tmp_path, candidates={"cnn": cnn}, progress=False)
    )
    context.candidates = {"cnn": cnn, "cnn-sparse": child}
    assert "corruption_accuracy_drop" not in {e.metric for e in Comparison().run(child, context)}  # nothing computed, nothing forced
    views = ("corrupt:gaussian_noise@2", "corrupt:contrast@4")
    evidence = {e.metric: e for e in Comparison().run(child, replace(context, views=("clean", *views)))}
    accuracy = lambda c, v: (lambda p: (p.predicted == p.labels).mean())(context.predict(c, view=v))  # noqa: E731
    expected = np.mean([accuracy(cnn, v) for v in views]) - np.mean([accuracy(child, v) for v in views])
    drop = evidence["corruption_accuracy_drop"]
    assert drop.value == pytest.approx(expected, abs=1e-12) and drop.low <= drop.value <= drop.high


def test_a_child_identical_to_its_parent_is_not_certain_to_be_identical(cnn, context):
    """Same predictions on these 269 examples: the drop is 0, and its interval says how much the next examples may differ."""
    from dataclasses import replace

    from assay.stats import paired_difference_interval
    from assay.models.candidate import Candidate

    twin = Candidate("cnn-twin", cnn.model, replace(cnn.provenance, recipe="quantize", parent="cnn"), training={})
    context.candidates = {"cnn": cnn, "cnn-twin": twin}
    evidence = {e.metric: e for e in Comparison().run(twin, context)}
    drop = evidence["accuracy_drop"]
    right = context.predict(cnn).predicted == context.predict(cnn).labels
    assert (drop.value, drop.low, drop.high) == pytest.approx(paired_difference_interval(right, right), abs=1e-12)
    assert drop.value == 0 and drop.low < 0 < drop.high
    for row in drop.details["per_class"]:
        assert row["low"] < 0 < row["high"] and not row["flagged"]
    for e in evidence.values():
        assert e.low <= e.value <= e.high
    # The bootstrapped drops too: macro-F1's bound is the most disagreement consistent with none seen, placed worst.
    from assay.stats import proportion_interval

    support = np.bincount(context.predict(cnn).labels, minlength=context.task.num_classes)
    n = int(support.sum())
    bound = 3 * proportion_interval(0, n)[1] * n / (np.count_nonzero(support) * support[support > 0].min())
    f1 = evidence["macro_f1_drop"]
    assert f1.value == 0 and (f1.low, f1.high) == pytest.approx((-bound, bound), abs=1e-12)


def test_a_twin_on_groups_has_a_worst_group_drop_interval_from_the_smallest_group(cnn, digits, context):
    from dataclasses import replace

    from assay.data.task import Split
    from assay.models.candidate import Candidate
    from assay.stats import proportion_interval

    parity = np.where(digits.test.y % 3 == 0, "three", "other")
    task = replace(digits, test=Split(digits.test.x, digits.test.y, groups={"parity": parity}))
    twin = Candidate("cnn-twin", cnn.model, replace(cnn.provenance, recipe="quantize", parent="cnn"), training={})
    ctx = replace(context, task=task, candidates={"cnn": cnn, "cnn-twin": twin})
    drop = {e.metric: e for e in Comparison().run(twin, ctx)}["worst_group_accuracy_drop"]
    u = proportion_interval(0, int((parity == "three").sum()))[1]
    assert drop.value == 0 and (drop.low, drop.high) == pytest.approx((-u, u), abs=1e-12)


def test_ece_rise_uses_the_calibration_checks_bins(cnn, mlp, context):
    """With the study's calibration at 5 bins, the paired ECE rise is the difference of 5-bin ECEs, not 15-bin ones."""
    from dataclasses import replace

    from assay.checks.calibration import Calibration, expected_calibration_error

    context.candidates = {"mlp": mlp, "cnn": cnn}
    ours, theirs = context.predict(cnn), context.predict(mlp)

    def rise(n_bins: int) -> float:
        return expected_calibration_error(ours.probs, ours.labels, n_bins) - expected_calibration_error(theirs.probs, theirs.labels, n_bins)

    assert abs(rise(5) - rise(15)) > 1e-4  # the bins make a difference here, so the test can tell them apart
    default = {e.metric: e for e in Comparison().run(cnn, context)}["ece_rise"]
    assert default.value == pytest.approx(rise(15), abs=1e-12)
    studied = {e.metric: e for e in Comparison().run(cnn, replace(context, checks={"calibration": Calibration(n_bins=5)}))}["ece_rise"]
    assert studied.value == pytest.approx(rise(5), abs=1e-12) and studied.low <= studied.value <= studied.high
    own = {e.metric: e for e in Comparison(n_bins=5).run(cnn, context)}["ece_rise"]
    assert own.value == pytest.approx(rise(5), abs=1e-12)


def test_group_drop_uses_the_fairness_checks_group(cnn, mlp, digits, context):
    """With two group attributes, the worst-group drop is on the one the study's fairness check reads, not the first."""
    from dataclasses import replace

    from assay.checks.fairness import Fairness
    from assay.data.task import Split

    ink = digits.test.x.reshape(len(digits.test), -1).mean(1)
    by_ink = np.array(["light", "medium", "heavy"])[np.digitize(ink, np.quantile(ink, [1 / 3, 2 / 3]))]
    by_parity = np.where(digits.test.y % 2 == 0, "even", "odd")
    task = replace(digits, test=Split(digits.test.x, digits.test.y, groups={"ink": by_ink, "parity": by_parity}))
    ctx = replace(context, task=task, candidates={"mlp": mlp, "cnn": cnn})

    def drop(check: Comparison, **kw) -> dict:
        return {e.metric: e for e in check.run(cnn, replace(ctx, **kw))}["worst_group_accuracy_drop"]

    first = drop(Comparison())
    assert first.details["attribute"] == "ink" and first.view == "group:ink"
    chosen = drop(Comparison(), checks={"fairness": Fairness(group="parity")})
    assert chosen.details["attribute"] == "parity" and chosen.view == "group:parity"
    assert {row["name"] for row in chosen.details["per_group"]} == {"even", "odd"}
    right = lambda c: context.predict(c).predicted == context.predict(c).labels  # noqa: E731
    worst = lambda ok: min(ok[by_parity == g].mean() for g in ("even", "odd"))  # noqa: E731
    assert chosen.value == pytest.approx(worst(right(mlp)) - worst(right(cnn)), abs=1e-12)
    assert drop(Comparison(group="parity")).details["attribute"] == "parity"
    # A group the task lacks: the other drops are still measured, and the skip says why.
    records = Comparison(group="age").run(cnn, ctx)
    assert "accuracy_drop" in {e.metric for e in records} and "worst_group_accuracy_drop" not in {e.metric for e in records}
    assert any(e.metric == "skipped" and "'age' is not in the task" in e.details["reason"] for e in records)
