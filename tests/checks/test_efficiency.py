"""efficiency: a candidate made without training has no training energy of its own (not 0, not -100%)."""

from dataclasses import replace

from assay.checks.efficiency import Efficiency
from assay.models.candidate import Candidate


def _run(candidate, context):
    return {e.metric: e for e in Efficiency(repeats=5, warmup=1, batch_size=16, batch_repeats=3).run(candidate, context)}


def test_an_untrained_child_reports_training_energy_as_not_applicable(mlp, context):
    child = Candidate("mlp-int8", mlp.model, replace(mlp.provenance, recipe="quantize", parent="mlp"), training={})
    evidence = _run(child, context)
    assert "training_energy_kj" not in evidence and "training_co2e_g" not in evidence
    reason = evidence["skipped"].details["reason"]
    assert "training_energy_kj" in reason and "not applicable" in reason and "'quantize'" in reason and "'mlp'" in reason


def test_a_trained_candidate_reports_its_training_energy(mlp, context):
    evidence = _run(mlp, context)
    assert evidence["training_energy_kj"].value > 0 and "skipped" not in evidence
    for e in evidence.values():
        if e.low is not None:
            assert e.low <= e.value <= e.high
