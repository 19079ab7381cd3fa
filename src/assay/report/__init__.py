"""The HTML report and the model card, rebuilt any time from stored records.

    from assay.report import ReportData, write_report
    html, card = write_report(run_dir, ReportData(...))
"""

from .data import ReportData
from .html import render_html
from .model_card import render_model_card
from .plots import FIGURES, PlotStyle, register_figure
from .write import write_report

__all__ = ["FIGURES", "PlotStyle", "ReportData", "register_figure", "render_html", "render_model_card", "write_report"]
