"""Figures and tables that cannot be wrong: error bars from rounding-level bounds, one number format per row."""

from __future__ import annotations

from assay.evidence import Evidence
from assay.report.plots import render


def _slice_record(name: str) -> Evidence:
    # The bounds issue 9 saw in the demo: a Wilson lower bound of 1.39e-17 above an error of 0,
    # and an upper bound of 0.9999999999999999 below an error of 1.
    worst = [
        {"slice": "embedding cluster 0", "n": 31, "error": 1.0, "interval": [0.888, 0.9999999999999999], "significant": True, "p": 0.0},
        {"slice": "embedding cluster 1", "n": 40, "error": 0.0, "interval": [1.3877787807814457e-17, 0.088], "significant": False, "p": 1.0},
        {"slice": "colour = red", "n": 12, "error": 0.25, "interval": [0.055, 0.572], "significant": False, "p": 0.3},
    ]
    return Evidence("slices", "worst_slice_error", name, 1.0, 0.888, 1.0, False,
                    details={"overall_error": 0.1, "slices_tried": 3, "alpha": 0.05, "worst": worst}, figures=("slices",))


def test_worst_slices_draw_when_bounds_sit_on_their_point_up_to_rounding():
    drawn = render("slices", [_slice_record("a"), _slice_record("b")])
    assert drawn.src and not drawn.note, drawn.note


def test_group_rates_and_recall_draw_with_missing_and_rounding_bounds():
    row = {"group": "x", "n": 20, "accuracy": 1.0, "accuracy_low": 0.83, "accuracy_high": 0.9999999999999999,
           "tpr": None, "tpr_low": None, "tpr_high": None, "fpr": 0.0, "fpr_low": 1.4e-17, "fpr_high": 0.3,
           "selection_rate": 0.5, "selection_rate_low": 0.27, "selection_rate_high": 0.73}
    groups = Evidence("fairness", "worst_group_accuracy", "a", 1.0, 0.83, 1.0, True,
                      details={"attribute": "race", "per_group": [row, {**row, "group": "y"}]}, figures=("group_rates",))
    drawn = render("group_rates", [groups])
    assert drawn.src and not drawn.note, drawn.note


def test_compression_table_uses_one_number_format_per_row():
    from assay.report.compression import _change, _decimals

    def rec(name, metric, value):
        return Evidence("calibration", metric, name, value, None, None, False)

    headline = {"cnn": {"ece": rec("cnn", "ece", 0.0034851), "training_energy_kj": rec("cnn", "training_energy_kj", 0.122)},
                "int8": {"ece": rec("int8", "ece", 0.0034851 + 2.903e-05)}, "prune": {"ece": rec("prune", "ece", 0.0034851)}}
    parents = {"int8": "cnn", "prune": "cnn"}
    d = _decimals(headline, ["int8", "prune"], parents, "ece")
    cells = [_change(headline, n, "cnn", "ece", d)["value"] for n in ("int8", "prune")]
    assert cells == ["+0.000029", "+0.000000"]  # seen: "+2.903e-05" beside "+0"
    # A child without a training-energy record (never trained) shows no change at all, not -100%.
    assert _change(headline, "int8", "cnn", "training_energy_kj")["value"] == "–"


def test_compression_row_of_rounding_level_values_keeps_a_readable_format():
    from assay.report.compression import _change, _decimals

    def rec(name, value):
        return Evidence("calibration", "nll_loss_temperature_scaled", name, value, None, None, False)

    headline = {"cnn": {"nll": rec("cnn", 4.5234e-16)}, "int8": {"nll": rec("int8", 2.369e-16)}}
    d = _decimals(headline, ["int8"], {"int8": "cnn"}, "nll")
    assert _change(headline, "int8", "cnn", "nll", d)["value"] == "+0.000"
