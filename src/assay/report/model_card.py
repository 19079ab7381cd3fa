"""The model card: a short Markdown page about the chosen model.

Sections follow Mitchell et al. 2019, "Model Cards for Model Reporting"
(FAT* '19): model details, intended use, training and evaluation data,
metrics, caveats and recommendations, trimmed to what a run actually
measured. Every statement comes from the stored records; where a check was
not run, the card says the model was not validated for it rather than
staying silent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..checks import load_all
from ..checks.base import known_metrics
from ..evidence import Evidence
from .adversarial_section import robust_accuracy_line
from .explain_section import explain_records, faithful_methods
from .poisoning_section import model_card_lines as poisoning_lines
from .data import ReportData, arch_text, failed_gates, fmt_number, fmt_time, gate_status, policy_metrics

def _untested() -> dict[str, str]:
    """check -> what a model that went through it was tested on (``Check.covers``), for checks whose absence limits the card."""
    return {name: cls.covers for name, cls in load_all().items() if cls.covers}


def render_model_card(data: ReportData) -> str:
    """The model card for ``data`` as Markdown."""
    chosen = data.chosen
    parts = [_header(data)]
    if chosen is None:
        parts.append(_no_choice(data))
    else:
        parts += [_details(data, chosen), _intended_use(data), _training_data(data), _evaluation_data(data),
                  _metrics(data, chosen), _calibration_efficiency(data.headline().get(chosen, {})), _explanations(data, chosen),
                  _adversarial(data, chosen), _poisoning(data, chosen)]
    parts += [_caveats(data), _reproduce(data)]
    return "\n\n".join(p.strip() for p in parts if p.strip()) + "\n"


def _md(text: object) -> str:
    """Escape a user string for Markdown text and table cells (no raw HTML, no broken tables)."""
    # Entities, not backslashes, for angle brackets: "\\<script" would still read as "<script" to a naive filter.
    text = re.sub(r"([\\`*\[\]|])", r"\\\1", str(text))
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _header(data: ReportData) -> str:
    title = f"Model card: {_md(data.chosen)}" if data.chosen else "Model card: no model chosen"
    return (f"# {title}\n\n*Study {_md(data.study_name)}, run `{data.run_id}`, {fmt_time(data.created)}. "
            "Written by assay from the run's stored records; intervals are 95%: Clopper-Pearson exact intervals for proportions (accuracy, recall, group rates), bootstrap for the rest.*")


def _details(data: ReportData, chosen: str) -> str:
    c = data.candidate(chosen)
    training = c.get("training") or {}
    lines = [
        "## Model details\n",
        f"- **Model:** {_md(chosen)}, content hash `{c.get('id', 'n/a')}`",
        f"- **Architecture:** `{arch_text(c.get('arch'))}`, {fmt_number(c.get('parameters'))} parameters",
        f"- **Recipe:** {_md(c.get('recipe', 'n/a'))}" + (f", derived from {_md(c['parent'])} (`{c.get('parent_id', '')}`)" if c.get("parent") else ""),
    ]
    if training:
        lines.append(f"- **Training:** {training.get('epochs_run', '?')} epochs, weights from epoch {training.get('best_epoch', '?')} "
                     "(lowest validation loss)" + (", stopped early" if training.get("stopped_early") else ""))
    lines += [
        f"- **Seed:** {c.get('seed', 'n/a')}; **data hash:** `{str(c.get('data_hash', 'n/a'))[:16]}`",
        f"- **Date:** {fmt_time(data.created)}",
        f"- **Why this one:** {_md(data.decision.reason)}",
    ]
    return "\n".join(lines)


def _intended_use(data: ReportData) -> str:
    task = data.task
    lines = ["## Intended use\n"]
    if data.study_description():
        lines.append(f"- **Purpose:** {_md(data.study_description())}")
    shape = "×".join(map(str, task.get("input_shape", [])))
    lines.append(f"- **Task:** {_md(task.get('description') or task.get('name', 'n/a'))}")
    lines.append(f"- **Inputs and outputs:** {_md(task.get('modality', '?'))} input of shape {shape or 'n/a'}; "
                 f"one of {len(task.get('classes', []))} classes ({_md(', '.join(map(str, task.get('classes', [])[:20])))}"
                 f"{', …' if len(task.get('classes', [])) > 20 else ''})")
    measured = {e.check for e in data.measured() if e.candidate == data.chosen}
    missing = [text for check, text in _untested().items() if check not in measured]
    lines.append("- **Not validated for:** inputs that differ from the test split" + (
        "; " + "; ".join(missing) if missing else "") + ". Check these before using it beyond that.")
    return "\n".join(lines)


def _training_data(data: ReportData) -> str:
    task, sizes = data.task, data.task.get("sizes", {})
    lines = ["## Training data\n", f"- **Data:** {_md(task.get('name', 'n/a'))}" + (f", {_md(task['source'])}" if task.get("source") else "")]
    if task.get("split rule"):
        lines.append(f"- **Split:** {_md(task['split rule'])}")
    lines.append(f"- **Sizes:** {fmt_number(sizes.get('train'))} training examples; {fmt_number(sizes.get('val'))} validation "
                 "examples (early stopping and epoch selection)")
    return "\n".join(lines)


def _evaluation_data(data: ReportData) -> str:
    counts = data.task.get("class_counts", {}).get("test") or []
    n = data.task.get("sizes", {}).get("test")
    per_class = f", {min(counts)}–{max(counts)} per class" if counts else ""
    views = ", ".join(f"`{_md(v)}`" for v in data.views()) or "none"
    return f"## Evaluation data\n\n- **Test split:** {fmt_number(n)} held-out examples{per_class}, never used for training or selection of epochs\n- **Views evaluated:** {views}"


def _metrics(data: ReportData, chosen: str) -> str:
    rows = [e for e in data.measured() if e.candidate == chosen and e.split == "test"]
    wanted = policy_metrics(data.decision)
    rows.sort(key=lambda e: (e.view != "clean", e.metric not in wanted))
    several = len({e.view for e in rows}) > 1
    lines = ["## Metrics", "", "Measured on the test split."]
    lines += ["", "| metric |" + (" view |" if several else "") + " value | 95% interval | gate |",
              "| --- |" + (" --- |" if several else "") + " ---: | ---: | :---: |"]
    for e in rows:
        value, _, interval = e.interval_text().partition(" [")
        gate = {True: "pass", False: "fail", None: ""}[gate_status(data.decision, chosen, e.metric)]
        view = f" {_md(e.view)} |" if several else ""
        lines.append(f"| `{_md(e.metric)}` |{view} {value} | {'[' + interval if interval else ''} | {gate} |")
    others = [n for n in data.candidate_names() if n != chosen]
    if others:
        lines += ["", "### Compared with the other candidates", "", _comparison(data)]
    return "\n".join(lines)


def _comparison(data: ReportData) -> str:
    metrics, table, failures = data.key_metrics(), data.headline(), failed_gates(data.decision)
    if not data.candidate_names():
        return "No candidate results were recorded."
    lines = ["| " + " | ".join(["candidate", *(f"`{m}`" for m in metrics), "status"]) + " |",
             "| " + " | ".join(["---", *("---:" for _ in metrics), "---"]) + " |"]
    for name in data.candidate_names():
        row = table.get(name, {})
        cells = [row[m].interval_text() if m in row else "–" for m in metrics]
        lines.append("| " + " | ".join([_md(name), *cells, _md(_status(data, name, failures))]) + " |")
    return "\n".join(lines)


def _status(data: ReportData, name: str, failures: Mapping[str, list[str]]) -> str:
    if data.decision is None:
        return "no decision"
    if name == data.chosen:
        return "chosen"
    return "fails " + "; ".join(failures[name]) if name in failures else "passes the gates"


def _calibration_efficiency(row: Mapping[str, Evidence]) -> str:
    declared = known_metrics()

    def text(metric: str) -> str:  # the value, its interval and its declared unit
        return declared[metric].with_unit(row[metric].interval_text()) if metric in declared else row[metric].interval_text()

    lines = ["## Calibration and efficiency\n"]
    if "ece" in row:
        lines.append(f"- **Calibration:** expected calibration error {row['ece'].interval_text()}"
                     + (f", Brier score {row['brier_loss'].interval_text()}" if "brier_loss" in row else "")
                     + (f", negative log-likelihood {row['nll_loss'].interval_text()}" if "nll_loss" in row else ""))
    if "latency_p50_ms" in row:
        where = row["latency_p50_ms"].details
        lines.append(f"- **Latency (batch of 1):** median {text('latency_p50_ms')}"
                     + (f", p95 {text('latency_p95_ms')}" if "latency_p95_ms" in row else "")
                     + (f", on {_md(where['device'])} with {where.get('threads', '?')} threads" if "device" in where else ""))
    if "throughput_per_s" in row:
        lines.append(f"- **Throughput:** {row['throughput_per_s'].interval_text()} examples per second in large batches")
    if "size_mb" in row:
        lines.append(f"- **Size:** {text('size_mb')} of weights"
                     + (f", {fmt_number(int(row['parameters'].value))} parameters" if "parameters" in row else ""))
    return "\n".join(lines) if len(lines) > 1 else ""


def _adversarial(data: ReportData, chosen: str) -> str:
    line = robust_accuracy_line(data, chosen)
    return f"## Adversarial robustness\n\n- {_md(line)}" if line else ""


def _poisoning(data: ReportData, chosen: str) -> str:
    lines = poisoning_lines(data, chosen)
    return "## Poisoning\n\n" + "\n".join(lines) if lines else ""


def _explanations(data: ReportData, chosen: str) -> str:
    """Which explanation method can be believed for the chosen model, and which cannot (the explain check's verdicts)."""
    by = {e.metric: e for e in explain_records(data) if e.candidate == chosen}
    gain = by.get("faithfulness_gain")
    if gain is None:
        return ""
    good, bad = faithful_methods(gain, by.get("randomisation_correlation"))
    best = gain.details.get("best_method")
    lines = ["## Explanations\n"]
    if good:
        lines.append(f"- **Faithful:** {', '.join(f'`{_md(m)}`' for m in good)}: each ranks features better than a random attribution "
                     f"(deletion/insertion gain over random, 95% interval above zero) and depends on the model's weights. "
                     f"Most faithful: `{_md(best)}`, gain {gain.interval_text()}. Use it to explain this model's predictions.")
    else:
        lines.append("- **No explanation method is faithful for this model:** none ranks features clearly better than a random one; "
                     "do not rely on its attribution maps.")
    for method, why in bad.items():
        lines.append(f"- **Not faithful:** `{_md(method)}`: {why}; do not use it for this model.")  # why: a verdict and numbers, no user text
    for method, why in (gain.details.get("not_applicable") or {}).items():
        lines.append(f"- **Not run:** `{_md(method)}`: {_md(why)}")
    drift = by.get("explanation_agreement")
    if drift is not None and drift.details.get("warnings"):
        lines += [f"- **Drift:** {_md(w)}" for w in drift.details["warnings"]]
    return "\n".join(lines)


def _no_choice(data: ReportData) -> str:
    failures = failed_gates(data.decision)
    lines = ["## No candidate was chosen", ""]
    if data.decision is None:
        lines.append("This run has no recorded decision, so no model is recommended from it.")
    else:
        lines.append("No candidate passes every gate of the policy, so no model is recommended from this run. The gates each one fails:")
        lines += [""] + [f"- **{_md(n)}:** {_md('; '.join(g))}" for n, g in failures.items()]
    lines += ["", "## Results of every candidate", "", _comparison(data)]
    return "\n".join(lines)


def _caveats(data: ReportData) -> str:
    notes = []
    row = data.headline().get(data.chosen or "", {})
    n = data.task.get("sizes", {}).get("test")
    acc = row.get("accuracy")
    if n and n < 1000:
        width = f" (accuracy's interval is {acc.high - acc.low:.3f} wide)" if acc and acc.low is not None and acc.high is not None else ""
        notes.append(f"The test set is small, {n} examples, so intervals are wide{width}; differences inside them are not evidence.")
    if acc is not None and acc.value >= 1.0 and n:
        notes.append(f"A perfect test accuracy on {n} examples still allows a true error rate up to about {3 / n:.1%} (rule of three, 95%).")
    if "worst_class_recall" in row and row["worst_class_recall"].details.get("worst_class") is not None and row["worst_class_recall"].value < 1:
        e = row["worst_class_recall"]
        notes.append(f"The weakest class is {_md(e.details['worst_class'])} (recall {e.interval_text()}); watch it in production.")
    if data.views() == ["clean"]:
        notes.append("Only the clean view of the test split was evaluated: no corruptions, shift or out-of-distribution inputs. "
                     "Expect lower accuracy on data unlike the test split; run the robustness and ood checks before relying on it.")
    if "latency_p50_ms" in row:
        notes.append("Latency was measured on the machine named above; re-measure on the hardware you will serve from.")
    if data.decision is not None and "statistically tied" in data.decision.reason:
        notes.append("The pick rests on a tie-break: front members were statistically tied on the first objective, so a later objective decided.")
    drop = row.get("accuracy_drop")
    if drop is not None and drop.details.get("relation") == "parent":
        d = drop.details
        harmed = ", ".join(f"'{_md(c)}'" for c in d.get("harmed_classes", []))
        notes.append(f"Compressed from {_md(d['against'])}: it gets {d.get('forgotten_count', 0)} test examples wrong that its parent gets right "
                     f"(accuracy drop {drop.interval_text()})" + (f"; class {harmed} lost disproportionately" if harmed else "") + ".")
    for e in data.skipped():
        if e.candidate == data.chosen:
            notes.append(f"The {_md(e.check)} check did not apply: {_md(e.details.get('reason', 'no reason recorded'))}.")
    if not notes:
        return ""
    return "## Caveats and recommendations\n\n" + "\n".join(f"- {note}" for note in notes)


def _reproduce(data: ReportData) -> str:
    lines = ["## How to reproduce", "", "The run folder holds the resolved study file; `assay run study.toml` repeats the run "
             f"(same seed, same splits) and `assay report {data.run_id}` rebuilds this card."]
    if data.study_text.strip():
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", data.study_text)), default=0))
        lines += ["", f"{fence}toml", data.study_text.rstrip(), fence]
    if data.environment:
        lines += ["", "Environment: " + ", ".join(f"{_md(k)} {_md(v)}" for k, v in sorted(data.environment.items())) + "."]
    return "\n".join(lines)
