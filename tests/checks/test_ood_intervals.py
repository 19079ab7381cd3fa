"""The ood check's intervals where the bootstrap alone would claim certainty."""

import pytest
import torch


def test_an_ood_share_of_all_accepted_is_not_certain(mlp, digits, tmp_path):
    """A model whose energy is the same for every input accepts every OOD input in every resample: the
    bootstrap says fpr95 = 1 [1, 1]; the exact interval of that share of the OOD inputs is reported instead."""
    import copy

    from assay.checks.base import CheckContext, make_check
    from assay.checks.predictions import PredictionCache
    from assay.stats import proportion_interval

    flat = copy.deepcopy(mlp)
    flat.name = "flat"
    with torch.no_grad():
        flat.model.head.weight.zero_()  # logits = bias: the same energy for every input
    context = CheckContext(task=digits, predictions=PredictionCache(None), seed=0, n_boot=100)
    far = next(e for e in make_check("ood", {}).run(flat, context) if e.metric == "far_ood_fpr95")
    n = len(digits.test.x) * 2  # the two far sets, noise and inverted, are as large as the test split
    assert far.value == 1.0 and (far.low, far.high) == pytest.approx(proportion_interval(n, n))
