"""The ``explain`` check: which explanation of this model can be believed?

On a seeded sample of the evaluated split (``n_examples``), each candidate
is explained by every method that applies to it (``checks/explainers.py``:
gradient methods need gradients, Grad-CAM a CNN, rollout attention maps; a
model without gradients gets feature ablation, KernelSHAP and the reason). Each method
is then measured, with 95% bootstrap intervals over the examples:

* deletion and insertion AUC (Petsiuk et al. 2018): the predicted class's
  probability as features are removed from the input (or inserted into the
  baseline) in attribution order, and the same curves for a random
  attribution on the same examples; the paired gain
  ``(insertion - deletion) - (random's)`` is the method's faithfulness. An
  interval that reaches zero reads "no better than random";
* the model-randomisation sanity check (Adebayo et al. 2018): Spearman
  correlation of |attributions| with those of copies whose layers are
  re-initialised from the top down; a method whose correlation stays above
  ``sanity_threshold`` at full randomisation does not depend on the model;
* integrated gradients' completeness error (Sundararajan et al. 2017);
* infidelity and max-sensitivity (Yeh et al. 2019, ``captum.metrics``; see
  ``checks/attribution_metrics.py``) of every method, with intervals;
* agreement between methods (Spearman, top-k overlap) and, against the
  parent (or the study's reference), explanation drift;
* the shortcut finder: mean |attribution| per pixel, step, column or token,
  overall and per class, from the most faithful method.

Headline metrics are the most faithful method's; every method's figures are
in the details, with the most confident right and wrong examples' inputs
and attributions (what a report overlays).

KernelSHAP costs about twenty times a gradient method (Captum evaluates its
coalitions one example at a time), and it runs in every study by default:
``costly_methods = "without_gradients"`` keeps it to the candidates no
gradient method applies to (int8, ONNX), where it is the second opinion next
to feature ablation; ``"all"`` runs it for every candidate, ``"none"`` for
none. Max-sensitivity runs a method again on every noisy copy: by default
only the most faithful method's, on the sample's first 16 examples
(``sensitivity_methods``, ``sensitivity_examples``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch

from ..models import gradients as grad
from ..models.forward import forward_pass
from ..stats import mean_interval
from . import attribution_math as am
from . import attribution_metrics as yeh
from . import explainers as ex
from .base import Check, CheckContext, Evidence, register_check
from .metrics import Metric, declare


@register_check
class Explain(Check):
    """Attributions for every candidate, each measured against a random baseline and a randomised model.

    Options beyond the sampling and the methods' own (``n_steps``, ``samples``):
    ``costly_methods`` (``"without_gradients"``, ``"all"``, ``"none"``): which
    candidates KernelSHAP explains; ``shap_samples`` coalitions per example
    over about ``shap_features`` patches or windows; ``infidelity_samples``
    removal perturbations per example (0: not measured); ``sensitivity_samples``
    noisy copies within ``sensitivity_radius`` of the value range, for the
    most faithful method (``sensitivity_methods = "best"``) or every one
    (``"all"``), on the sample's first ``sensitivity_examples``.
    """

    name = "explain"
    metrics = declare(
        Metric("deletion_auc", False, "area under the predicted-class probability as the top-attributed features are removed", scale="proportion"),
        Metric("insertion_auc", True, "area under the predicted-class probability as the top-attributed features are inserted", scale="proportion"),
        Metric("faithfulness_gain", True, "most faithful method's insertion-minus-deletion AUC over a random attribution's", scale="real"),
        Metric("randomisation_correlation", False, "rank correlation of its attributions with a weight-randomised copy's (Adebayo 2018)",
               scale="real"),
        Metric("ig_completeness_error", False, "integrated gradients' |sum - (f(x) - f(baseline))| over |f(x) - f(baseline)|", scale="amount"),
        Metric("explanation_agreement", True, "Spearman correlation of its attributions with its parent's (or the reference's)", scale="real"),
        Metric("max_sensitivity", False, "most faithful method's largest relative change of its attributions under small input noise "
               "(Yeh et al. 2019)", scale="amount"),
    )
    covers = "explanations of its predictions, each checked against a random one"

    @staticmethod
    def worst_finding(records: Mapping[str, Evidence]) -> str:
        gain = records.get("faithfulness_gain")
        if gain is None:
            return ""
        losers = [m for m, row in gain.details.get("methods", {}).items() if row["verdict"] != "better than random"]
        return f"no better than random: {', '.join(losers)}" if losers else ""

    def __init__(self, *, n_examples: int = 64, methods: list[str] | tuple[str, ...] = ex.METHODS, n_steps: int = 32, samples: int = 8,
                 curve_steps: int = 16, baseline: str = "auto", top_k: int = 10, sanity_threshold: float = 0.5,
                 drift_threshold: float = 0.5, cascade_steps: int = 3, chunk: int = 256, costly_methods: str = "without_gradients",
                 shap_samples: int = 64, shap_features: int = 16, infidelity_samples: int = 8, sensitivity_samples: int = 4,
                 sensitivity_radius: float = 0.02, sensitivity_methods: str = "best", sensitivity_examples: int = 16) -> None:
        unknown = [m for m in methods if m not in ex.REGISTRY]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; available: {', '.join(ex.REGISTRY)}")
        if baseline not in ("auto", "zeros"):
            raise ValueError(f"baseline = {baseline!r}; use 'auto' (blurred image, mean row, pad tokens) or 'zeros'")
        if costly_methods not in ("without_gradients", "all", "none"):
            raise ValueError(f"costly_methods = {costly_methods!r}; use 'without_gradients' (KernelSHAP only where no gradient method "
                             "applies), 'all' or 'none'")
        if min(n_examples, n_steps, samples, curve_steps, top_k, cascade_steps, chunk, shap_samples, shap_features, sensitivity_examples) < 1:
            raise ValueError("n_examples, n_steps, samples, curve_steps, top_k, cascade_steps, chunk, shap_samples, shap_features and "
                             "sensitivity_examples must be >= 1")
        if sensitivity_methods not in ("best", "all"):
            raise ValueError(f"sensitivity_methods = {sensitivity_methods!r}; use 'best' (the most faithful method's) or 'all'")
        if min(infidelity_samples, sensitivity_samples) < 0 or not 0 < sensitivity_radius < 1:
            raise ValueError("infidelity_samples and sensitivity_samples must be >= 0 (0: not measured), sensitivity_radius in (0, 1)")
        self.n_examples, self.methods, self.n_steps, self.samples = n_examples, tuple(methods), n_steps, samples
        self.curve_steps, self.baseline, self.top_k, self.sanity_threshold = curve_steps, baseline, top_k, sanity_threshold
        self.drift_threshold, self.cascade_steps, self.chunk = drift_threshold, cascade_steps, chunk
        self.costly_methods, self.shap_samples, self.shap_features = costly_methods, shap_samples, shap_features
        self.infidelity_samples, self.sensitivity_samples, self.sensitivity_radius = infidelity_samples, sensitivity_samples, sensitivity_radius
        self.sensitivity_methods, self.sensitivity_examples = sensitivity_methods, sensitivity_examples

    # --- gathering ---

    def sample(self, context: CheckContext) -> np.ndarray:
        """The seeded, sorted indices of the examples explained."""
        n = len(context.data)
        return np.sort(np.random.default_rng(context.seed).choice(n, size=min(self.n_examples, n), replace=False))

    def setup(self, context: CheckContext, x: np.ndarray) -> ex.Setup:
        task = context.task
        names, groups, base = ex.feature_space(task, x, self.baseline)
        rng = np.random.default_rng(context.seed + 1)
        refs = np.asarray(task.train.x[np.sort(rng.choice(len(task.train), size=min(16, len(task.train)), replace=False))])
        if task.modality == "image" and self.baseline == "auto":
            refs = ex.blur(refs)
        return ex.Setup(names=names, groups=groups, shape=tuple(x.shape[1:]), tokens=task.modality == "text", baseline=base,
                        references=refs, n_steps=self.n_steps, samples=self.samples, seed=context.seed, chunk=self.chunk,
                        shap_samples=self.shap_samples, shap_features=self.shap_features)

    def attributions(self, model, x: np.ndarray, target: np.ndarray, setup: ex.Setup, methods) -> dict[str, np.ndarray]:
        """Each method's ``(N, F)`` attributions of ``target`` on ``x``."""
        xt, tt = torch.as_tensor(x), torch.as_tensor(target)
        return {m: ex.REGISTRY[m](model, xt, tt, setup) for m in methods}

    # --- measuring ---

    def endpoints(self, model, x: np.ndarray, setup: ex.Setup) -> torch.Tensor:
        """``(2N, K)`` logits at each input, then at its baseline, in one batched pass.

        Every deletion and insertion curve starts at one and ends at the other,
        infidelity's unperturbed term is the first and IG's completeness reads
        both: passed on, they are not computed again for each method.
        """
        return forward_pass(model, np.concatenate([x, setup.baseline]), batch_size=setup.batch_size).logits

    def curves(self, model, x, target, setup: ex.Setup, attributions: dict[str, np.ndarray],
               ends: torch.Tensor) -> dict[str, dict[str, np.ndarray]]:
        """Per method (and ``random``): deletion and insertion curves ``(N, S)`` and their AUCs ``(N,)``; ``ends`` from ``endpoints``."""
        fractions = np.linspace(0, 1, self.curve_steps + 1)
        inner = fractions[1:-1]  # only these steps are forwarded: nothing or everything removed is the input or the baseline itself
        eligible = setup.eligible(x)
        n = len(x)
        at_ends = ex.probability_of(ends, np.concatenate([target, target]))
        at_x, at_baseline = at_ends[:n, None], at_ends[n:, None]
        out = {}
        for name, a in attributions.items():
            removed = am.removal_masks(a, eligible, inner)
            row = {}
            for kind, masks, first, last in (("deletion", removed, at_x, at_baseline), ("insertion", ~removed, at_baseline, at_x)):
                p = ex.target_probability(model, setup.remove(x, masks), np.repeat(target, len(inner)), setup.batch_size) if len(inner) \
                    else np.zeros(0)
                curve = np.concatenate([first, p.reshape(n, len(inner)), last], axis=1)
                row[kind], row[f"{kind}_auc"] = curve, am.curve_auc(curve, fractions)
            out[name] = row
        return out

    def randomisation(self, model, x, target, setup: ex.Setup, attributions: dict[str, np.ndarray], seed: int) -> dict[str, list]:
        """Per method, ``(layer, (N,) Spearman)`` at each step of the cascading randomisation."""
        out: dict[str, list] = {m: [] for m in attributions}
        eligible = setup.eligible(x)
        trained = {m: am.row_ranks(np.abs(a), eligible) for m, a in attributions.items()}  # ranked once for every step
        for layer, copy in ex.randomised_copies(model, self.cascade_steps, seed):
            for m, a in self.attributions(copy, x, target, setup, list(attributions)).items():
                out[m].append((layer, am.correlate_ranks(trained[m], am.row_ranks(np.abs(a), eligible))))
        return out

    def infidelity(self, model, x, target, setup: ex.Setup, attributions: dict[str, np.ndarray], seed: int,
                   logits: torch.Tensor | None = None) -> dict[str, np.ndarray]:
        """Per method, ``(N,)`` infidelity (Yeh et al. 2019); empty when ``infidelity_samples`` is 0 or Captum is missing.

        ``logits``: the model's ``(N, K)`` at ``x`` when known (every method's unperturbed term).
        """
        if not self.infidelity_samples or ex.captum_missing():
            return {}
        return {m: yeh.infidelity(model, x, target, setup, a, samples=self.infidelity_samples, seed=seed, logits=logits)
                for m, a in attributions.items()}

    def sensitivity(self, model, x, target, setup: ex.Setup, methods: list[str], seed: int) -> dict[str, np.ndarray]:
        """Per method, max-sensitivity (Yeh et al. 2019) of the sample's first ``sensitivity_examples``; empty for token inputs or 0 samples."""
        if not self.sensitivity_samples or setup.tokens or ex.captum_missing():
            return {}
        k = min(self.sensitivity_examples, len(x))  # the method runs again on every noisy copy: a bounded share of the sample
        part = replace(setup, baseline=setup.baseline[:k])
        return {m: yeh.max_sensitivity(ex.REGISTRY[m], model, x[:k], target[:k], part, samples=self.sensitivity_samples,
                                       radius=self.sensitivity_radius, seed=seed) for m in methods}

    def completeness(self, target, ig: np.ndarray, ends: torch.Tensor, model=None, x: np.ndarray | None = None,
                     setup: ex.Setup | None = None) -> np.ndarray:
        """``(N,)`` IG's completeness error, the gap ``f(x) - f(baseline)`` read from ``endpoints``' logits.

        For a token model IG's path runs in embedding space while the ids stay
        ``x``'s (so does the padding mask the model computes from them): its
        start is the baseline's embeddings under ``x``'s mask, not the forward
        pass of the baseline ids, and is computed so (``model``, ``x``, ``setup``).
        """
        n, t = len(ig), torch.as_tensor(target).view(-1, 1)
        start = ends[n:]
        if setup is not None and setup.tokens:
            xt = torch.as_tensor(x)
            start = grad.logits_at(model, xt, grad.gradient_space(model, torch.as_tensor(setup.baseline))).cpu()
        gap = (ends[:n].gather(1, t) - start.gather(1, t))[:, 0].numpy()
        return am.completeness_error(ig.sum(axis=1), gap)

    # --- the verb ---

    def run(self, candidate, context: CheckContext) -> list[Evidence]:
        caps, model = candidate.capabilities, candidate.model
        idx = self.sample(context)
        x = np.asarray(context.data.x[idx])
        predictions = context.predict(candidate)
        target = predictions.predicted[idx].astype(np.int64)
        labels = np.asarray(context.data.y[idx])
        setup = self.setup(context, x)
        reasons = {m: r for m in self.methods if (r := ex.applicable(m, model, caps.differentiable))}
        if self.costly_methods == "none" or (caps.differentiable and self.costly_methods == "without_gradients"):
            why = "costly: not run (costly_methods = 'none')" if self.costly_methods == "none" else \
                "costly: run for candidates without gradients (costly_methods = 'all' runs it for every candidate)"
            reasons.update({m: why for m in ex.COSTLY if m in self.methods and m not in reasons})
        methods = [m for m in self.methods if m not in reasons]
        notes = [] if caps.differentiable else [f"gradient methods not run: {caps.lacks('differentiable')}"]
        if not methods:
            return [self.skipped(candidate, f"no explanation method applies ({'; '.join(f'{m}: {r}' for m, r in reasons.items())})")]
        attributions = self.attributions(model, x, target, setup, methods)
        rng = np.random.default_rng(context.seed + 2)
        ends = self.endpoints(model, x, setup)
        curves = self.curves(model, x, target, setup, {**attributions, "random": rng.random((len(x), len(setup.groups)))}, ends)
        n_boot, seed = context.n_boot, context.seed

        def interval(values: np.ndarray) -> tuple[float, tuple[float, float]]:
            v = np.asarray(values, dtype=np.float64)
            return float(v.mean()), mean_interval(v, n_boot=n_boot, seed=seed)

        rand = curves["random"]
        infidelity = self.infidelity(model, x, target, setup, attributions, context.seed, ends[: len(x)])
        table = {}
        for m in methods:
            c = curves[m]
            gain, (lo, hi) = interval((c["insertion_auc"] - c["deletion_auc"]) - (rand["insertion_auc"] - rand["deletion_auc"]))
            verdict = "better than random" if lo > 0 else ("worse than random" if hi < 0 else "no better than random")
            table[m] = {"gain": gain, "low": lo, "high": hi, "verdict": verdict,
                        **{k: _row(*interval(c[f"{k}_auc"])) for k in ("deletion", "insertion")},
                        "infidelity": _row(*interval(infidelity[m])) if m in infidelity else None,
                        "curve": {k: c[k].mean(0).tolist() for k in ("deletion", "insertion")}}
        best = max(methods, key=lambda m: table[m]["gain"])
        # Max-sensitivity re-runs a method on every noisy copy: by default only the most faithful one's (its headline metric).
        sensitivity = self.sensitivity(model, x, target, setup, methods if self.sensitivity_methods == "all" else [best], context.seed)
        for m in methods:
            table[m]["max_sensitivity"] = _row(*interval(sensitivity[m])) if m in sensitivity else None
        if self.sensitivity_samples and setup.tokens:
            notes.append("max-sensitivity not measured: token ids have no small perturbation")
        if (self.infidelity_samples or self.sensitivity_samples) and (why := ex.captum_missing()):
            notes.append(f"infidelity and max-sensitivity not measured: {why}")
        common = {"best_method": best, "methods": table, "not_applicable": reasons, "n_examples": len(x), "notes": notes,
                  "agreement": _agreement(attributions, self.top_k, setup.eligible(x)),
                  "shortcuts": self._shortcuts(context, x, labels, setup, attributions[best]),
                  "examples": self._examples(context, idx, x, labels, target, predictions.probs[idx], setup, attributions[best], best),
                  "yeh": {"infidelity_samples": self.infidelity_samples, "removed_share": yeh.REMOVED_SHARE,
                          "sensitivity_samples": self.sensitivity_samples, "sensitivity_radius": self.sensitivity_radius,
                          "sensitivity_methods": self.sensitivity_methods, "sensitivity_examples": min(self.sensitivity_examples, len(x))},
                  "random": {k: _row(*interval(rand[f"{k}_auc"])) | {"curve": rand[k].mean(0).tolist()} for k in ("deletion", "insertion")}}
        ev = [
            self.evidence(candidate, "faithfulness_gain", table[best]["gain"], (table[best]["low"], table[best]["high"]), details=common,
                          figures=("explain_curves",)),
            *(self.evidence(candidate, f"{k}_auc", table[best][k]["value"], table[best][k]["interval"], details={"method": best})
              for k in ("deletion", "insertion")),
        ]
        if table[best]["max_sensitivity"] is not None:
            row = table[best]["max_sensitivity"]
            ev.append(self.evidence(candidate, "max_sensitivity", row["value"], tuple(row["interval"]),
                                    details={"method": best, "samples": self.sensitivity_samples, "radius": self.sensitivity_radius}))
        if caps.differentiable:
            ev.append(self._sanity(candidate, model, x, target, setup, attributions, best, seed, n_boot))
        if "integrated_gradients" in attributions:
            err, ci = interval(self.completeness(target, attributions["integrated_gradients"], ends, model, x, setup))
            ev.append(self.evidence(candidate, "ig_completeness_error", err, ci, details={"n_steps": self.n_steps, "baseline": self.baseline}))
        drift = self._drift(candidate, context, x, target, setup, attributions, interval)
        if drift is not None:
            ev.append(drift)
        return ev

    def _sanity(self, candidate, model, x, target, setup, attributions, best, seed, n_boot) -> Evidence:
        cascade = self.randomisation(model, x, target, setup, attributions, seed)
        per_method = {}
        for m, steps in cascade.items():
            # the study's bootstrap size, as every other interval of the check (it was always 1000 here)
            value, (lo, hi) = float(steps[-1][1].mean()), mean_interval(steps[-1][1], n_boot=n_boot, seed=seed)
            per_method[m] = {"value": value, "interval": [lo, hi], "passes": value <= self.sanity_threshold,
                             "cascade": [{"layer": layer, "spearman": float(r.mean())} for layer, r in steps]}
        row = per_method[best]
        failing = [m for m, r in per_method.items() if not r["passes"]]
        return self.evidence(candidate, "randomisation_correlation", row["value"], tuple(row["interval"]),
                             details={"method": best, "methods": per_method, "threshold": self.sanity_threshold, "failing": failing})

    def _drift(self, candidate, context, x, target, setup, attributions, interval) -> Evidence | None:
        parent_name = candidate.provenance.parent
        other = context.candidates.get(parent_name) if parent_name else context.reference
        if other is None or other is candidate or other.name == candidate.name:
            return None
        ok = [m for m in attributions if ex.applicable(m, other.model, other.capabilities.differentiable) is None]
        if not ok:
            return None
        method = "integrated_gradients" if "integrated_gradients" in ok else ok[0]
        theirs = self.attributions(other.model, x, target, setup, [method])[method]
        eligible = setup.eligible(x)
        rho = am.spearman_rows(np.abs(attributions[method]), np.abs(theirs), eligible)
        value, ci = interval(rho)
        overlap = am.top_k_overlap(np.abs(attributions[method]), np.abs(theirs), self.top_k, eligible)
        details = {"method": method, "against": other.name, "top_k": self.top_k, "top_k_overlap": float(overlap.mean())}
        if value < self.drift_threshold:
            details["warnings"] = [f"explanations drifted from {other.name}'s ({method}: Spearman {value:.2f} < {self.drift_threshold}): "
                                   "it no longer looks where its parent looks"]
        return self.evidence(candidate, "explanation_agreement", value, ci, reference=other.name, details=details)

    def _shortcuts(self, context, x, labels, setup: ex.Setup, attributions: np.ndarray) -> dict:
        task = context.task
        if setup.tokens:
            return am.token_importance(attributions, x, labels, _token_names(task.pipeline, x), task.class_names, self.top_k)
        found = am.global_importance(attributions, labels, setup.names, task.class_names, self.top_k)
        if task.modality == "image":
            found["map_shape"] = list(setup.shape[1:])
        return found

    def _examples(self, context, idx, x, labels, target, probs, setup: ex.Setup, attributions: np.ndarray, best: str) -> list[dict]:
        """The most confident right and wrong predictions of the sample: input, label, prediction and the best method's attribution."""
        task = context.task
        confidence = probs[np.arange(len(x)), target]
        picks = am.confident_examples(labels == target, confidence)
        rows = np.array([i for _, i in picks], dtype=np.int64)
        keep = setup.eligible(x)[rows] if setup.tokens else None  # a text's padding is dropped
        out = []
        for j, ((role, i), shown) in enumerate(zip(picks, _example_inputs(task, x[rows], setup, keep))):
            attribution = attributions[i][keep[j]] if setup.tokens else attributions[i]
            out.append({"role": role, "index": int(idx[i]), "label": str(task.class_names[labels[i]]),
                        "predicted": str(task.class_names[target[i]]), "confidence": float(confidence[i]), "method": best,
                        "attribution": attribution.tolist(), "input": shown})
        return out


def _example_inputs(task, x: np.ndarray, setup: ex.Setup, keep: np.ndarray | None) -> list[dict]:
    """What a person sees of each input: the image or signal (model units), the table row as the user wrote it, the kept tokens."""
    if not len(x):
        return []
    if setup.tokens:
        names = _token_names(task.pipeline, x)
        return [{"tokens": [names[int(t)] for t in row[k]]} for row, k in zip(x, keep)]
    if task.modality == "tabular":
        pipeline = task.pipeline
        if pipeline is not None and hasattr(pipeline, "inverse"):
            frame = pipeline.inverse(x)
            return [{"columns": list(setup.names), "values": [str(v) for v in frame[setup.names].iloc[r].tolist()]} for r in range(len(x))]
        return [{"columns": list(setup.names), "values": [str(v) for v in row.tolist()]} for row in x]
    return [{"shape": list(row.shape), "values": row.astype(np.float64).ravel().tolist()} for row in x]


def _row(value: float, ci: tuple[float, float]) -> dict:
    return {"value": value, "interval": [ci[0], ci[1]]}


def _agreement(attributions: dict[str, np.ndarray], k: int, eligible: np.ndarray) -> list[dict]:
    """Mean Spearman and top-k overlap of |attributions| for each pair of methods, over the features that count."""
    names = list(attributions)
    ranks = {m: am.row_ranks(np.abs(a), eligible) for m, a in attributions.items()}  # each method ranked once for all its pairs
    tops = {m: am.top_k(np.abs(a), k, eligible) for m, a in attributions.items()}
    return [{"methods": [a, b], "spearman": float(am.correlate_ranks(ranks[a], ranks[b]).mean()),
             "top_k_overlap": float(am.shared_share(tops[a], tops[b]).mean())}
            for i, a in enumerate(names) for b in names[i + 1:]]


def _token_names(pipeline, ids: np.ndarray) -> dict[int, str]:
    """Token id -> its text, from the task's tokenizer (ids as text when it has none)."""
    if hasattr(pipeline, "token_names"):
        return pipeline.token_names(ids)
    return {int(i): str(int(i)) for i in np.unique(ids)}
