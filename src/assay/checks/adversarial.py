"""The ``adversarial`` check: how much of the accuracy survives an attacker who may move each input a little?

On a seeded sample of the evaluated split (``n_examples``), each candidate is
attacked at every radius of ``epsilons`` (units per modality: pixel values on
[0, 1]; the training signals' standard deviation; standardised table
columns, one-hot columns fixed; a token model's embedding spread, the attack
working in embedding space). The adversarial examples are views of the
prediction cache (``adv:apgd@0.1``, ``adv:apgd@0.1:from=cnn``), made once and
stored like any view's predictions.

* A candidate with gradients gets the white-box ``attack`` (APGD-CE by
  default, Croce & Hein 2020).
* One without (PyTorch int8, ONNX Runtime, trees, a black box) gets a
  transfer attack from its float parent (the parent's adversarial examples)
  and Square Attack (Andriushchenko et al. 2020) with a query budget; an
  example counts as robust only if it survives both.

Robust accuracy at each radius has a Clopper-Pearson interval; the headline
``adversarial_accuracy`` is the one at ``headline_epsilon`` (default: the
middle of the list). Each example's minimal epsilon starts as the smallest
radius of the list whose attack flips it (0 when already wrong, censored
above the largest); with ``bisection_steps`` (default 5) the white-box attack
then bisects inside that bracket of the list, every example at its own radius
in one batched attack per step, and keeps the smallest radius seen to flip it
(an upper bound on the true minimum, as the list's was).
``median_min_epsilon`` is their median, with an order-statistic interval;
the details give the quartiles, the method and the precision reached.

The attacks stop stepping an example at its first fooling iterate
(``stop_when_fooled``, on by default; AutoAttack likewise attacks only the
points still standing): a fooled example's point is that iterate, which
makes PGD at least as strong per seed and leaves APGD's points unchanged,
while the steps cost only the examples still standing.

Gradient masking (Athalye et al. 2018; Carlini et al. 2019) makes a model
look robust because the attack cannot find its gradient. The check looks for
its signs and writes each one into ``details["warnings"]``: robust accuracy
rising with epsilon; rising (or falling by more than ``tolerance``) with
``step_factor`` times the steps on a subset; a black-box attack beating the
white-box one there; gradients that are exactly zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from .._options import above, at_least, between
from ..models import attacks as atk
from ..models import gradients as grad
from ..models.inputs import as_input
from ..stats import proportion_interval
from . import adversarial_math as am
from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare
from .predictions import Adversary, AdversarialView

DEFAULT_EPSILONS = {"linf": (0.01, 0.03, 0.1, 0.2, 0.3), "l2": (0.1, 0.25, 0.5, 1.0, 2.0)}
SHOWN = 4  # adversarial examples kept for the report


@dataclass(frozen=True, eq=False)
class _Run:
    """One attack run against a candidate: its label in the evidence, its settings, and the candidate it is made on."""

    label: str
    settings: atk.AttackSettings
    source: object | None = None  # a transfer's source Candidate

    def view(self, eps: float) -> str:
        return AdversarialView(self.settings.attack, eps, self.source.name if self.source is not None else None).name

    def describe(self) -> str:
        made = f"transfer from {self.source.name}: " if self.source is not None else ""
        return made + self.settings.describe()


@dataclass(frozen=True, eq=False)
class MinimalEpsilons:
    """Per attacked example (``(n,)`` each): its minimal epsilon found, the largest radius that failed below it, and the list's bracket.

    ``found`` is 0 where the clean input is already wrong and ``inf`` where even the largest radius did not flip it.
    ``points``: the fooling point (gradient space) at ``found`` of each example bisection flipped, else its clean input
    (``None`` without bisection).
    """

    found: np.ndarray
    lower: np.ndarray
    bracket_low: np.ndarray
    bracket_high: np.ndarray
    points: torch.Tensor | None
    method: str

    def precision(self) -> float:
        """The widest bracket left around a finite minimal epsilon (the list's spacing without bisection); 0 when none."""
        open_ = np.isfinite(self.found) & (self.found > 0)
        return float((self.found - self.lower)[open_].max()) if open_.any() else 0.0


@register_check
class Adversarial(Check):
    """Robust accuracy under white-box, transfer and black-box attacks, with gradient-masking warnings."""

    name = "adversarial"
    by_default = False  # attacks cost many passes per example: a study asks for it by name
    metrics = declare(
        Metric("adversarial_accuracy", True, "accuracy under attack at the headline epsilon (worst case over the attacks run)",
               scale="proportion"),
        Metric("median_min_epsilon", True, "median over examples of the smallest epsilon whose attack flips the prediction (the list, "
               "then bisected)", scale="amount"),
    )
    covers = "inputs an attacker perturbed within a small radius (adversarial examples)"
    limits = {"epsilons": above(0), "headline_epsilon": above(0), "n_examples": at_least(1), "restarts": at_least(1),
              "queries": at_least(1), "check_examples": at_least(1), "step_factor": at_least(2), "tolerance": between(0, 1),
              "step_size": above(0), "p_init": between(0, 1, low_open=True), "bisection_steps": at_least(0)}

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        e = records.get("adversarial_accuracy")
        if e is None:
            return ""
        text = f"accuracy {e.interval_text()} at eps {e.details.get('headline_epsilon', '?'):g}"
        return text + (" (not trustworthy: see warnings)" if e.details.get("warnings") else "")

    def __init__(self, *, epsilons: list[float] | tuple[float, ...] | None = None, attack: str = "apgd", norm: str = "linf", steps: int = 20,
                 restarts: int = 1, step_size: float | None = None, random_start: bool = True, schedule: str = "constant",
                 n_examples: int = 256, headline_epsilon: float | None = None, queries: int = 300, p_init: float = 0.3,
                 check_examples: int = 64, step_factor: int = 4, tolerance: float = 0.02, bisection_steps: int = 5,
                 stop_when_fooled: bool = True) -> None:
        if norm not in atk.NORMS:
            raise ValueError(f"norm = {norm!r}; use one of {', '.join(atk.NORMS)}")
        eps = tuple(sorted(float(e) for e in (epsilons if epsilons is not None else DEFAULT_EPSILONS[norm])))
        if not eps or len(set(eps)) != len(eps):
            raise ValueError(f"epsilons = {list(epsilons or [])}; give distinct radii, e.g. epsilons = [0.03, 0.1, 0.3]")
        headline = eps[len(eps) // 2] if headline_epsilon is None else float(headline_epsilon)
        if headline not in eps:
            raise ValueError(f"headline_epsilon = {headline_epsilon} is not in epsilons {list(eps)}; add it to the list")
        self.epsilons, self.attack, self.norm, self.steps, self.restarts = eps, attack, norm, steps, restarts
        self.step_size, self.random_start, self.schedule, self.n_examples = step_size, random_start, schedule, n_examples
        self.headline_epsilon, self.queries, self.p_init = headline, queries, p_init
        self.check_examples, self.step_factor, self.tolerance = check_examples, step_factor, tolerance
        self.bisection_steps, self.stop_when_fooled = bisection_steps, stop_when_fooled
        self.settings(0)  # validates attack, schedule and the rest now, not at the first candidate

    def settings(self, seed: int, attack: str | None = None) -> atk.AttackSettings:
        """The attack settings these options give (``attack`` overrides the main attack)."""
        kind = attack or self.attack
        return atk.AttackSettings(attack=kind, norm=self.norm, steps=self.steps, restarts=self.restarts,
                                  step_size=self.step_size, random_start=self.random_start, schedule=self.schedule,
                                  queries=self.queries, p_init=self.p_init, seed=seed, stop_when_fooled=self.stop_when_fooled)

    def sample(self, context: CheckContext) -> np.ndarray:
        """The seeded, sorted rows of the evaluated split that are attacked."""
        n = len(context.data)
        return np.sort(np.random.default_rng(context.seed).choice(n, size=min(self.n_examples, n), replace=False))

    # --- gathering ---

    def plan(self, candidate, context: CheckContext) -> tuple[list[_Run], list[str]]:
        """The attack runs that apply to ``candidate`` and notes on what did not, and why."""
        caps, modality, seed = candidate.capabilities, context.task.modality, context.seed
        if caps.differentiable or self.attack == "square":
            if modality == "text" and self.attack == "square":
                return [], ["Square Attack perturbs input values; token ids have none (use a gradient attack in embedding space)"]
            return [_Run("white-box" if self.attack != "square" else "square", self.settings(seed))], []
        runs, notes = [], [f"no white-box attack: {caps.lacks('differentiable')}"]
        parent = context.candidates.get(candidate.provenance.parent or "")
        white = self.settings(seed, self.attack if self.attack in atk.WHITE_BOX else "apgd")
        if parent is not None and parent is not candidate and parent.capabilities.differentiable:
            if modality == "text" and grad.embedding_layer(candidate.model) is None:
                notes.append(f"no transfer from {parent.name}: this model reads no token embeddings to perturb")
            else:
                runs.append(_Run("transfer", white, parent))
        else:
            notes.append("no transfer attack: no float parent with gradients among the study's candidates")
        if modality == "text":
            notes.append("no Square Attack: token ids have no values to perturb")
        else:
            runs.append(_Run("square", self.settings(seed, "square")))
        return runs, notes

    def correct(self, candidate, context: CheckContext, run: _Run, eps: float, rows: np.ndarray, clean_correct: np.ndarray,
                settings: atk.AttackSettings | None = None):
        """``(robust (n,), predictions)`` of ``candidate`` under ``run`` at radius ``eps`` on ``rows``, through the prediction cache."""
        adversary = Adversary(settings or run.settings, rows=rows, source=run.source, keep=SHOWN)
        p = context.predictions.get(candidate, context.task, split=context.split, view=run.view(eps), adversary=adversary)
        return am.robust_correct(clean_correct, p.predicted, p.labels), p

    # --- the verb ---

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        runs, notes = self.plan(candidate, context)
        if not runs:
            return [self.skipped(candidate, "; ".join(notes) or "no attack applies")]
        rows = self.sample(context)
        clean = context.predict(candidate)
        clean_correct = (clean.predicted == clean.labels)[rows]
        h = self.epsilons.index(self.headline_epsilon)
        per_run, shown = {}, None
        for r in runs:
            results = [self.correct(candidate, context, r, eps, rows, clean_correct) for eps in self.epsilons]
            per_run[r.label] = np.stack([c for c, _ in results])  # (E, n)
            if shown is None and results[h][1].inputs is not None:
                shown = results[h][1]
        combined = np.logical_and.reduce(list(per_run.values()))  # robust only if it survives every attack
        n = len(rows)
        curve = _curve(self.epsilons, combined)
        for i, point in enumerate(curve):
            point["attack"] = min(per_run, key=lambda label: per_run[label][i].sum())  # the attack that binds here
        warnings = self._warnings(candidate, context, runs, per_run, rows, clean_correct)
        unit = self._unit(context, candidate, runs)
        details = {
            "epsilons": list(self.epsilons), "headline_epsilon": self.headline_epsilon, "norm": self.norm, "unit": unit,
            "space": "embedding" if context.task.modality == "text" else "input", "n_examples": n,
            "clean_accuracy": float(clean_correct.mean()) if n else float("nan"),
            "curve": curve, "attacks": {r.label: {"description": r.describe(), "source": r.source.name if r.source is not None else None,
                                                   "curve": _curve(self.epsilons, per_run[r.label])} for r in runs},
            "attack": " + ".join(r.describe() for r in runs), "notes": notes, "warnings": warnings,
            "examples": self._examples(context, shown, clean, rows) if shown is not None else [],
        }
        if context.task.modality == "text":
            details["notes"] = [*notes, "the attack perturbs token embeddings, not the text: a bound on robustness to any change "
                                        "of the embeddings, not to word substitutions"]
        transfer = next((r for r in runs if r.source is not None), None)
        if transfer is not None:
            details["transfer"] = self._transfer(context, transfer, per_run["transfer"], rows)
        k = int(combined[h].sum())
        value = k / n if n else 0.0
        low, high = proportion_interval(k, n) if n else (0.0, 1.0)
        ev = [self.evidence(candidate, "adversarial_accuracy", value, (low, high), details=details, figures=("adversarial_curve",))]
        ev.append(self._min_epsilon(candidate, self.minimal_epsilons(candidate, context, runs, rows, combined, clean_correct), warnings))
        return ev

    def minimal_epsilons(self, candidate, context: CheckContext, runs: list[_Run], rows: np.ndarray, correct: np.ndarray,
                         clean_correct: np.ndarray) -> MinimalEpsilons:
        """Each attacked example's minimal epsilon: the list's bracket from ``correct`` (``(E, n)`` robust flags), narrowed by bisection.

        Bisection runs the candidate's own white-box attack (same settings and seed), every bracketed example at its own
        radius in one batch per step, through the gradient helper: it judges each point with ``gradients.logits_at``.
        """
        low, high = am.brackets(correct, clean_correct, self.epsilons)
        white = runs[0] if len(runs) == 1 and runs[0].label == "white-box" else None
        if not self.bisection_steps or white is None:
            why = "" if not self.bisection_steps else " (no bisection: it needs a white-box attack on the candidate itself)"
            return MinimalEpsilons(high, low, low, high, None, "the smallest epsilon of the list that flips each example" + why)
        model = candidate.model
        x = as_input(context.data.x[rows], device=candidate.device)
        y = torch.as_tensor(np.asarray(context.data.y)[rows], dtype=torch.long, device=candidate.device)
        constraint = atk.constraint_for(context.task, model)
        points = grad.gradient_space(model, x).clone()

        def flips(idx: np.ndarray, eps: np.ndarray) -> np.ndarray:
            i = torch.as_tensor(idx, device=x.device)
            adv = atk.run_attack(model, x[i], y[i], torch.as_tensor(eps, dtype=torch.float32), constraint, white.settings)
            hit = grad.logits_at(model, x[i], adv).argmax(1) != y[i]
            points[i[hit]] = adv[hit]  # each later hit is at a smaller radius
            return hit.cpu().numpy()

        found, lower = am.bisect(low, high, flips, self.bisection_steps)
        return MinimalEpsilons(found, lower, low, high, points.cpu(),
                               f"bisection, {self.bisection_steps} steps, within the list's bracket ({white.settings.describe()})")

    # --- parts ---

    def _min_epsilon(self, candidate, m: MinimalEpsilons, warnings: list[str]) -> Evidence:
        found, top = m.found, self.epsilons[-1]
        quartiles = {}
        for name, q in (("q25", 0.25), ("median", 0.5), ("q75", 0.75)):
            value, low, high = am.quantile_interval(found, q)
            quartiles[name] = {"value": min(value, top), "interval": [min(low, top), min(high, top)], "at_least": bool(value > top)}
        median = quartiles["median"]
        details = {"quartiles": quartiles, "censored_share": float(np.isinf(found).mean()) if len(found) else 0.0,
                   "epsilons": list(self.epsilons), "warnings": warnings, "method": m.method, "precision": m.precision(),
                   "meaning": "smallest radius found to flip each example (an upper bound on its minimal epsilon); 'at least' "
                              "where the largest of the list did not; precision: the widest bracket left around a minimal epsilon"}
        return self.evidence(candidate, "median_min_epsilon", median["value"], tuple(median["interval"]), details=details)

    def _warnings(self, candidate, context: CheckContext, runs: list[_Run], per_run: dict[str, np.ndarray], rows: np.ndarray,
                  clean_correct: np.ndarray) -> list[str]:
        """Signs of gradient masking (Athalye et al. 2018; Carlini et al. 2019): each one a sentence saying why the figure is doubtful."""
        out = [f"robust accuracy rises from {a:.3f} at eps {e1:g} to {b:.3f} at eps {e2:g}: a larger ball holds every point of a smaller "
               "one, so the attack is failing (gradient masking or too few steps); the figure is not trustworthy"
               for e1, e2, a, b in am.rises(self.epsilons, np.logical_and.reduce(list(per_run.values())), self.tolerance)]
        white = next((r for r in runs if r.label == "white-box"), None)
        if white is None or self.attack not in atk.WHITE_BOX:
            return out
        h = self.epsilons.index(self.headline_epsilon)
        eps, m = self.headline_epsilon, min(self.check_examples, len(rows))
        sub, sub_clean = rows[:m], clean_correct[:m]
        first = per_run["white-box"][h][:m]
        base = first.mean() if m else 0.0
        longer = replace(white.settings, steps=white.settings.steps * self.step_factor)
        more, _ = self.correct(candidate, context, white, eps, sub, sub_clean, settings=longer)
        said = f"robust accuracy at eps {eps:g} on {m} examples: {base:.3f} with {white.settings.steps} steps, {more.mean():.3f} with {longer.steps}"
        if am.shifted(more & ~first, first & ~more, self.tolerance):
            out.append(f"{said}: more attack must not help the model (gradient masking); the figure is not trustworthy")
        elif am.shifted(first & ~more, more & ~first, self.tolerance):
            out.append(f"{said}: the attack has not converged, and the figure overstates robustness")
        if context.task.modality != "text":
            black = _Run("square", self.settings(context.seed, "square"))
            found, _ = self.correct(candidate, context, black, eps, sub, sub_clean)
            if am.shifted(first & ~found, found & ~first, self.tolerance):
                out.append(f"a black-box attack (Square, {self.queries} queries) leaves {found.mean():.3f} robust at eps {eps:g}, the "
                           f"white-box {self.attack} {base:.3f}, on the same {m} examples: gradients mislead the white-box attack "
                           "(gradient masking); the figure is not trustworthy")
        x = as_input(context.data.x[sub])
        y = torch.as_tensor(np.asarray(context.data.y)[sub], dtype=torch.long)
        g = grad.input_gradients(candidate.model, x, y, loss=atk.cross_entropy).cpu().numpy()
        share = am.zero_gradient_share(g[sub_clean]) if sub_clean.any() else 0.0
        if share > self.tolerance:
            out.append(f"the loss gradient is exactly zero on {share:.0%} of the correctly classified examples checked: gradient attacks "
                       "cannot move them (a non-differentiable step or a saturated softmax); the figure is not trustworthy")
        return out

    def _transfer(self, context: CheckContext, run: _Run, child: np.ndarray, rows: np.ndarray) -> dict:
        """Parent -> child: the parent's own white-box robust accuracy and the child's on the same adversarial examples."""
        parent = run.source
        clean = context.predict(parent)
        parent_clean = (clean.predicted == clean.labels)[rows]
        own = np.stack([self.correct(parent, context, _Run("white-box", run.settings), eps, rows, parent_clean)[0] for eps in self.epsilons])
        return {"from": parent.name, "attack": run.settings.describe(), "parent_curve": _curve(self.epsilons, own),
                "child_curve": _curve(self.epsilons, child)}

    def _examples(self, context: CheckContext, p, clean, rows: np.ndarray) -> list[dict]:
        """A few clean/adversarial pairs at the headline radius, for the report (images and signals)."""
        if context.task.modality not in ("image", "signal") or p.inputs is None:
            return []
        out = []
        for i, adv in enumerate(p.inputs[:SHOWN]):
            row = int(rows[i])
            x = np.asarray(context.data.x[row], dtype=np.float32)
            out.append({"row": row, "label": int(p.labels[i]), "clean_predicted": int(clean.predicted[row]),
                        "adversarial_predicted": int(p.predicted[i]), "epsilon": self.headline_epsilon,
                        "clean": np.round(x, 4).tolist(), "adversarial": np.round(adv, 4).tolist()})
        return out

    def _unit(self, context: CheckContext, candidate, runs: list[_Run]) -> str:
        model = (runs[0].source or candidate).model if runs else candidate.model
        try:
            return atk.constraint_for(context.task, model).unit
        except Exception:  # noqa: BLE001 — the unit is a label; a model with no embedding layer has no embedding unit
            return "input units"


def _curve(epsilons, correct: np.ndarray) -> list[dict]:
    """Robust accuracy and its Clopper-Pearson interval at each radius, from ``(E, n)`` robust flags."""
    n = correct.shape[1]
    out = []
    for eps, row in zip(epsilons, correct):
        k = int(row.sum())
        low, high = proportion_interval(k, n) if n else (0.0, 1.0)
        out.append({"epsilon": float(eps), "accuracy": k / n if n else 0.0, "low": float(low), "high": float(high)})
    return out
