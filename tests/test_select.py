"""Policies: parsing, gates, the Pareto front and the pick."""

import pytest

from assay.checks.base import Evidence, known_metrics
from assay.errors import SpecError
from assay.select import Policy, pareto_front, select


def ev(candidate, metric, value, low=None, high=None, split="val"):
    return Evidence(check="x", metric=metric, candidate=candidate, value=value, low=low, high=high, split=split)


def policy(gates=(), objectives=()):
    return Policy.parse({"gates": list(gates), "objectives": list(objectives)}, known_metrics())


def test_unknown_metric_suggests_the_fix():
    with pytest.raises(SpecError, match=r"study.toml \[policy\]: unknown metric 'acuracy' in gate 'acuracy >= 0.9' \(did you mean 'accuracy'\?\)"):
        Policy.parse({"gates": ["acuracy >= 0.9"]}, known_metrics(), where="study.toml [policy]")
    with pytest.raises(SpecError, match="cannot read gate"):
        policy(gates=["accuracy is big"])
    with pytest.raises(SpecError, match="cannot read objective"):
        policy(objectives=["maximize"])
    with pytest.raises(SpecError, match="unknown key 'gate'"):
        Policy.parse({"gate": []}, known_metrics())


def test_pareto_front():
    values = {"a": [0.9, 5.0], "b": [0.95, 10.0], "c": [0.85, 6.0], "d": [0.95, 10.0]}
    assert pareto_front(values, [True, False]) == ["a", "b", "d"]


def test_gates_filter_and_none_passing_gives_no_choice():
    evidence = [ev("a", "accuracy", 0.90), ev("b", "accuracy", 0.97)]
    d = select(evidence, ["a", "b"], policy(gates=["accuracy >= 0.95"]))
    assert d.chosen == "b" and d.passed == ("b",)
    d = select(evidence, ["a", "b"], policy(gates=["accuracy >= 0.99"]))
    assert d.chosen is None and "a: accuracy >= 0.99 (got 0.9)" in d.reason
    missing = select(evidence, ["a", "b"], policy(gates=["ece <= 0.1"]))
    assert missing.chosen is None and "not measured" in missing.reason


def test_a_statistical_tie_on_the_first_objective_is_broken_by_the_next():
    evidence = [
        ev("big", "accuracy", 0.985, 0.97, 0.996), ev("big", "latency_p50_ms", 3.0),
        ev("small", "accuracy", 0.980, 0.965, 0.993), ev("small", "latency_p50_ms", 1.0),
        ev("bad", "accuracy", 0.90, 0.87, 0.93), ev("bad", "latency_p50_ms", 0.5),
    ]
    d = select(evidence, ["big", "small", "bad"], policy(objectives=["maximise accuracy", "minimise latency_p50_ms"]))
    assert set(d.pareto) == {"big", "small", "bad"}
    assert d.chosen == "small" and "statistically tied" in d.reason
    clear = [*evidence[:2], ev("small", "accuracy", 0.90, 0.88, 0.92), evidence[3]]
    assert select(clear, ["big", "small"], policy(objectives=["maximise accuracy", "minimise latency_p50_ms"])).chosen == "big"


def test_decision_round_trips_through_json():
    import json

    from assay.select import Decision

    d = select([ev("a", "accuracy", 0.9)], ["a"], policy(gates=["accuracy > 0.5"]))
    assert Decision.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_the_decision_is_made_on_validation_and_ignores_test_figures():
    """The test-set best differs from the validation-set best: the validation choice ships."""
    evidence = [
        ev("a", "accuracy", 0.95, 0.93, 0.97), ev("a", "accuracy", 0.90, 0.87, 0.92, split="test"),
        ev("b", "accuracy", 0.89, 0.86, 0.91), ev("b", "accuracy", 0.96, 0.94, 0.98, split="test"),
    ]
    d = select(evidence, ["a", "b"], policy(gates=["accuracy >= 0.9"], objectives=["maximise accuracy"]))
    assert d.chosen == "a" and d.select_on == "val" and "validation split" in d.reason
    assert [r.value for r in d.gate_results] == [0.95, 0.89]
    on_test = Policy.parse({"gates": ["accuracy >= 0.9"], "objectives": ["maximise accuracy"], "select_on": "test"}, known_metrics())
    assert select(evidence, ["a", "b"], on_test).chosen == "b"
    with pytest.raises(SpecError, match="select_on = 'train' is not a split"):
        Policy.parse({"select_on": "train"}, known_metrics())


def test_a_tie_on_the_last_objective_is_said():
    evidence = [ev("a", "accuracy", 0.95, 0.93, 0.97), ev("b", "accuracy", 0.94, 0.92, 0.96), ev("c", "accuracy", 0.80, 0.78, 0.82)]
    d = select(evidence, ["a", "b", "c"], policy(objectives=["maximise accuracy"]))
    assert d.chosen == "a" and d.tied == ("b",)
    assert "statistically tied with b" in d.reason and "no further objective" in d.reason
    clear = select(evidence[::2], ["a", "c"], policy(objectives=["maximise accuracy"]))
    assert clear.tied == () and "it is best on accuracy" in clear.reason


def test_the_tie_rule_the_sentence_states_is_the_one_applied():
    """Tied when at least one value lies in the other's interval (here only b's value lies in a's)."""
    evidence = [ev("a", "accuracy", 0.95, 0.90, 0.99), ev("a", "latency_p50_ms", 2.0),
                ev("b", "accuracy", 0.91, 0.905, 0.915), ev("b", "latency_p50_ms", 1.0)]
    d = select(evidence, ["a", "b"], policy(objectives=["maximise accuracy", "minimise latency_p50_ms"]))
    assert d.chosen == "b" and "at least one of each pair's values lies inside the other's 95% interval" in d.reason


def test_beats_baseline_gate_and_failed_candidates():
    evidence = [ev("a", "beats_baseline", 0.0), ev("a", "accuracy", 0.9), ev("b", "beats_baseline", 1.0), ev("b", "accuracy", 0.8)]
    gate = policy(gates=["beats_baseline"])
    assert gate.gates[0].metric == "beats_baseline" and str(gate.gates[0]) == "beats_baseline >= 1"
    assert select(evidence, ["a", "b"], gate).chosen == "b"
    d = select(evidence, ["a", "b"], gate, failed={"b": "training diverged"})
    assert d.chosen is None and d.failed == {"b": "training diverged"} and "b: training diverged" in d.reason


def test_a_recipe_repeated_over_draws_is_judged_on_its_mean():
    """One lucky draw of 'few' beats 'steady' alone; on the mean over draws 'steady' wins, and the best draw of a picked recipe ships."""
    values = {"few.draw1": 0.97, "few.draw2": 0.70, "few.draw3": 0.72, "steady.draw1": 0.90, "steady.draw2": 0.91, "steady.draw3": 0.89}
    evidence = [ev(n, "accuracy", v, v - 0.01, v + 0.01) for n, v in values.items()]
    draws = {n: n.split(".")[0] for n in values}
    d = select(evidence, list(values), policy(objectives=["maximise accuracy"]), draws=draws)
    assert d.chosen == "steady.draw2"
    assert "mean over its 3 labelled draws" in d.reason and "steady.draw2 ships" in d.reason
    assert select(evidence, list(values), policy(objectives=["maximise accuracy"])).chosen == "few.draw1"


def test_the_decision_keeps_gates_typed_and_writes_the_text_old_runs_have():
    """Gates and objectives are parsed once; decision.json holds their text, as every stored decision does."""
    from assay.select import Decision, Gate, Objective

    d = select([ev("a", "accuracy", 0.9), ev("a", "beats_baseline", 1.0)], ["a"],
               policy(gates=["accuracy > 0.5", "beats_baseline"], objectives=["maximize accuracy"]))
    assert d.gates == (Gate("accuracy", ">", 0.5), Gate("beats_baseline", ">=", 1.0)) and d.objectives == (Objective("accuracy", True),)
    assert d.gate_results[1].gate.metric == "beats_baseline" and d.metrics() == ["accuracy", "beats_baseline"]
    stored = d.to_dict()
    assert stored["gates"] == ["accuracy > 0.5", "beats_baseline >= 1"] and stored["objectives"] == ["maximise accuracy"]
    assert [r["gate"] for r in stored["gate_results"]] == ["accuracy > 0.5", "beats_baseline >= 1"]
    # A decision.json written before gates were typed (no 'tied', 'failed' or 'select_on') reads back typed.
    old = {"chosen": "a", "reason": "r", "gates": ["ece <= 0.05"], "objectives": ["minimise latency_p50_ms"], "passed": ["a"],
           "pareto": ["a"], "gate_results": [{"candidate": "a", "gate": "ece <= 0.05", "value": 0.01, "passed": True}]}
    back = Decision.from_dict(old)
    assert back.gates == (Gate("ece", "<=", 0.05),) and back.objectives == (Objective("latency_p50_ms", False),)
    assert back.gate_results[0].gate == Gate("ece", "<=", 0.05) and back.select_on == "test"
    with pytest.raises(SpecError, match="cannot read gate 'ece is low'"):
        Decision.from_dict({**old, "gates": ["ece is low"]})


def test_a_metric_of_the_data_alone_cannot_be_gated_on():
    assert known_metrics()["baseline_accuracy"].gateable is False
    with pytest.raises(SpecError, match="reads 'baseline_accuracy', which describes the data"):
        policy(gates=["baseline_accuracy >= 0.5"])
    with pytest.raises(SpecError, match="reads 'baseline_accuracy', which describes the data"):
        policy(objectives=["maximise baseline_accuracy"])


def test_only_a_flag_may_stand_alone_as_a_gate():
    assert known_metrics()["beats_baseline"].scale == "flag"
    with pytest.raises(SpecError, match="cannot read gate 'accuracy'"):
        policy(gates=["accuracy"])
