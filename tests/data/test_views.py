"""View names: one module parses every family, adversarial ones included."""

import pytest

from assay.data.views import AdversarialView, ViewName, apply_view, expand_views, is_adversarial
from assay.errors import SpecError
from assay.models.attacks import ATTACKS


@pytest.mark.parametrize("name, parsed", [
    ("adv:pgd@0.1", AdversarialView("pgd", 0.1)),
    ("adv:apgd@8e-3", AdversarialView("apgd", 0.008)),
    ("adv:pgd@0.1:from=cnn-int8", AdversarialView("pgd", 0.1, "cnn-int8")),
])
def test_adversarial_names_parse_and_print_back(name, parsed):
    assert AdversarialView.parse(name, ATTACKS) == parsed and is_adversarial(name)
    assert AdversarialView.parse(parsed.name) == parsed  # the name it prints is one it parses


@pytest.mark.parametrize("name, message", [
    ("adv:pgd", r"cannot parse; write adv:<attack>@<epsilon>\[:from=<candidate>\]"),
    ("adv:pgd@0.1:to=cnn", "cannot parse"),
    ("adv:cw@0.1", "unknown attack 'cw'; use one of fgsm"),
])
def test_a_bad_adversarial_name_is_one_line_naming_it(name, message):
    with pytest.raises(SpecError, match=message):
        AdversarialView.parse(name, ATTACKS)


def test_other_families_are_not_adversarial_and_adversarial_views_are_not_materialised_here(digits):
    assert not is_adversarial("corrupt:gaussian_noise@3") and ViewName.parse("corrupt:gaussian_noise@3").filename() == "corrupt-gaussian_noise-3"
    assert expand_views(("clean", "adv:pgd@0.1"), digits) == ["clean", "adv:pgd@0.1"]  # passed through for the cache to make
    with pytest.raises(SpecError, match="ask the prediction cache"):
        apply_view(digits, "test", "adv:pgd@0.1")
