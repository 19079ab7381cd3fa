"""A study end to end: resumes an interrupted run instead of starting over."""

import pytest

from assay.spec import parse_study
from assay.study import Study

STUDY = """
name = "resume"
[task]
builtin = "digits"
[[recipe]]
name = "first"
kind = "train"
arch = "mlp"
epochs = 2
[[recipe]]
name = "second"
kind = "train"
arch = "mlp"
arch_options = { hidden = [64] }
epochs = 4
[[recipe]]
name = "second-int8"
kind = "quantize"
parent = "second"
[checks]
run = ["performance"]
n_boot = 200
[policy]
gates = ["accuracy >= 0.5"]
"""


class Interrupt(Exception):
    pass


def test_rerunning_an_interrupted_study_resumes_it(tmp_path):
    spec = parse_study(STUDY)
    calls = []

    def crash_in_second(epoch, row):
        calls.append(epoch)
        if len(calls) == 4:  # first trained 2 epochs; stop 'second' after its epoch 2
            raise Interrupt

    with pytest.raises(Interrupt):
        Study(spec, out=tmp_path, progress=False).run(on_epoch_end=crash_in_second)
    calls.clear()
    result = Study(spec, out=tmp_path, progress=False).run(on_epoch_end=lambda e, r: calls.append(e))
    assert result.resumed
    assert calls == [3, 4]  # 'first' was loaded, 'second' continued from its checkpoint
    assert [c["name"] for c in result.candidates] == ["first", "second", "second-int8"]
    assert result.exit_code == 0 and result.decision.chosen in {"first", "second", "second-int8"}

    fresh = Study(spec, out=tmp_path / "fresh", progress=False).run()
    ours = {(e.candidate, e.metric): e.value for e in result.evidence}
    assert ours == {(e.candidate, e.metric): e.value for e in fresh.evidence}
    # A finished run is not resumed: the next run is new.
    assert not Study(spec, out=tmp_path, progress=False).run().resumed


DIVERGING = """
name = "diverge"
[task]
builtin = "digits"
[[recipe]]
name = "wild"
kind = "train"
arch = "mlp"
arch_options = { hidden = [64], dropout = 0.0 }
epochs = 3
lr = 1e12
warmup_epochs = 0
[[recipe]]
name = "wild-int8"
kind = "quantize"
parent = "wild"
[[recipe]]
name = "calm"
kind = "train"
arch = "mlp"
epochs = 2
[checks]
run = ["performance"]
n_boot = 200
[policy]
gates = ["accuracy >= 0.5"]
"""


def test_a_diverged_training_fails_that_candidate_only(tmp_path, capsys):
    result = Study(parse_study(DIVERGING), out=tmp_path, progress=False).run()
    assert result.decision.chosen == "calm" and result.exit_code == 0
    assert set(result.decision.failed) == {"wild", "wild-int8"}
    assert "training diverged in epoch" in result.decision.failed["wild"] and "parent 'wild' failed" in result.decision.failed["wild-int8"]
    assert {e.candidate for e in result.evidence} == {"calm"}
    assert "wild: training diverged" in capsys.readouterr().err
    assert "wild failed and was not judged" in result.report.read_text()
    assert (result.run_dir / "work" / "wild" / "failed.txt").is_file()  # a resumed run reads it instead of retraining


TRANSFORMED = """
name = "transformed"
[task]
labels_per_class = 20
builtin = "digits"
holdout_classes = ["9"]
[[recipe]]
name = "few"
kind = "train"
arch = "mlp"
epochs = 1
labels_per_class = 3
draws = 2
[checks]
run = ["performance"]
n_boot = 200
"""


def test_a_study_applies_the_tasks_transforms_and_each_recipes_own_through_the_registry(tmp_path):
    """[task] transforms are recorded in the run; a recipe's labels_per_class is the same transform on its copy."""
    import json
    from pathlib import Path

    from assay.data.transforms import LabelsPerClass, TransformContext
    from assay.study import load_task

    result = Study(parse_study(TRANSFORMED), out=tmp_path, progress=False).run()
    task = load_task({"builtin": "digits", "holdout_classes": ["9"], "labels_per_class": 20}, base_dir=Path("."), seed=0)
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["data_hash"] == task.digest()
    assert meta["task"]["transforms"] == task.summary()["transforms"] and len(meta["task"]["transforms"]) == 2
    for draw in (1, 2):
        candidate = next(c for c in result.candidates if c["name"] == f"few.draw{draw}")
        labelled = LabelsPerClass(labels_per_class=3, draw=draw).apply(task, TransformContext(seed=0))
        assert candidate["data_hash"] == labelled.digest() != task.digest()
    assert "train: 3 labels per class" not in result.report.read_text()  # a recipe's copy is the recipe's, not the task's
    assert "classes 9 held out as near-OOD" in result.report.read_text()
