"""Writing a run's report and model card, atomically."""

from __future__ import annotations

from pathlib import Path

from .._io import write_text
from .data import ReportData
from .html import render_html
from .model_card import render_model_card


def write_report(run_dir: Path, data: ReportData) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` and ``run_dir/model_card.md``.

    Both are rendered before either is written, and each is written to a
    temporary file in ``run_dir`` and renamed over the old one, so a reader
    (or a crash) never sees half a report.

    Args:
        run_dir: the run's folder; created when missing.
        data: the run's records, as the store holds them.

    Returns:
        The paths of the HTML report and the model card.

    Example:
        >>> html, card = write_report(store.run_dir(run_id), data)  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    html, card = render_html(data), render_model_card(data)
    html_path, card_path = run_dir / "report.html", run_dir / "model_card.md"
    write_text(html_path, html)
    write_text(card_path, card)
    return html_path, card_path
