"""The command line: parse, validate, call the API, print.

Exit status: 0 when a candidate passes the gates (or a command succeeds), 1
when no candidate passes, 2 for a user error (one line, no traceback unless
``--debug``), 130 when interrupted (run the same command again to resume).
Only the standard library is imported at module level so ``assay --help``
answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEMO_STUDY = "digits.toml"
# Threads for torch and BLAS when --threads is not given. `assay demo --new --quiet`, wall time on a
# 2-core machine: 18.8 s and 29.3 s with 1 thread against 103.9 s and 121.1 s with 2 while other work
# ran (load 4-5); 18.9 s against 27.6 s when nearly idle (load 1.3). assay's models are small: their
# many short kernels gain nothing from a second thread and wait on it whenever a core is busy.
DEFAULT_THREADS = 1


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line (the usage itself is one ``--help`` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"assay: error: {message}; see '{self.prog} --help'\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give a seed from 0 to 4294967295") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a seed from 0 to 4294967295")
    return value


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give a thread count of 1 or more, e.g. --threads 1") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a thread count from 1 to {os.cpu_count() or 1}")
    return value


def _row(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; give a row number from 0, e.g. --row 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give a row number from 0, e.g. --row 0")
    return value


def _common(suppress: bool = False) -> argparse.ArgumentParser:
    """The options every command takes. A subcommand's copy has no defaults (``suppress``), so
    ``assay --out X run ...`` keeps X instead of the subcommand resetting it to the default."""
    common = _Parser(add_help=False)

    def default(value):
        return argparse.SUPPRESS if suppress else value

    common.add_argument("--out", default=default("runs"), metavar="DIR", help="runs folder holding run folders and index.db (default: runs)")
    common.add_argument("--device", default=default("auto"), help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    common.add_argument("--seed", type=_seed, default=default(None), help="override the study file's seed (0 to 4294967295)")
    common.add_argument("--threads", type=_threads, default=default(None), metavar="N",
                        help=f"CPU threads for torch and BLAS (default: {DEFAULT_THREADS}, measured fastest for assay's small models on a busy machine)")
    common.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks for errors")
    common.add_argument("--quiet", action="store_true", default=default(False), help="no progress output (bars on a terminal, one line per stage otherwise)")
    return common


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    common, sub_common = _common(), _common(suppress=True)
    parser = _Parser(
        prog="assay",
        description="Which model should I ship for this task, and what is the evidence? "
        "assay makes candidate models, checks each one with the same battery, decides with a policy, and writes a report.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"assay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", parents=[sub_common], help="run the bundled digits study (examples/digits.toml)",
                          description="Train an MLP and a CNN on scikit-learn's digits, quantize the CNN, check all three, pick one, write the report.")
    demo.add_argument("--new", action="store_true", help="start a new run instead of resuming an unfinished one")
    demo.add_argument("--quick", action="store_true", help="a small, fast version of the demo (not for deciding)")
    run = sub.add_parser("run", parents=[sub_common], help="run a study file", description="Run a study file: make candidates, check them, decide, report.")
    run.add_argument("study", type=Path, help="the study file (TOML)")
    run.add_argument("--new", action="store_true", help="start a new run instead of resuming an unfinished one")
    run.add_argument("--quick", action="store_true", help="try the study end to end in a minute or two: small samples, few epochs (not for deciding)")
    compress = sub.add_parser("compress", parents=[sub_common], help="compress a saved model and judge every variant",
                              description="Quantize, prune, distil and export a saved model (NAME.safetensors + NAME.json, or a .onnx file), "
                              "run the whole battery on every variant against it, and pick the fastest, smallest one that keeps its accuracy. "
                              "The study it runs is written beside the runs folder, to edit and re-run with 'assay run'.")
    compress.add_argument("model", type=Path, help="the saved model: NAME.safetensors (with NAME.json) or MODEL.onnx")
    compress.add_argument("--task", required=True, help="a builtin task name (e.g. digits) or a data path the model was trained for")
    compress.add_argument("--max-drop", type=float, default=0.01, metavar="D", help="largest accuracy drop a variant may have against the model (default: 0.01)")
    compress.add_argument("--new", action="store_true", help="start a new run instead of resuming an unfinished one")
    sub.add_parser("runs", parents=[sub_common], help="list stored runs", description="List the runs in the runs folder, newest first.")
    show = sub.add_parser("show", parents=[sub_common], help="print a run's summary", description="Print a run's evidence table and decision.")
    show.add_argument("run", help="run id, unique prefix, or 'latest'")
    report = sub.add_parser("report", parents=[sub_common], help="rebuild a run's report and model card", description="Rebuild report.html and model_card.md from the store.")
    report.add_argument("run", help="run id, unique prefix, or 'latest'")
    explain = sub.add_parser("explain", parents=[sub_common], help="predict and explain one input with a stored candidate",
                             description="Read one input with the run's task (an image file, a CSV row, a text file, a signal as .npy "
                             "or one line of numbers), print the candidate's prediction and top 3 classes, and write its attribution "
                             "next to the run (runs/<id>/explanations/: a PNG, or HTML for text, and the numbers as JSON).")
    explain.add_argument("run", help="run id, unique prefix, or 'latest'")
    explain.add_argument("--candidate", required=True, metavar="NAME", help="the candidate to explain, by its name in the run")
    explain.add_argument("--input", required=True, type=Path, metavar="FILE", help="the input file")
    explain.add_argument("--method", metavar="M", help="attribution method (default: the run's most faithful for the candidate, "
                         "else integrated_gradients, or ablation for a model without gradients)")
    explain.add_argument("--row", type=_row, metavar="K", help="the row of a table file to explain (0-based; needed when it holds several)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed as one line
        return stop.code if isinstance(stop.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    from .errors import AssayError

    logger = logging.getLogger("assay")
    saved = logger.level, logger.propagate
    handler = _log_to_stderr(args)
    import warnings

    shown = warnings.formatwarning
    warnings.formatwarning = lambda message, *rest, **kw: f"assay: warning: {message}\n"  # one line, as errors are
    try:
        return _COMMANDS[args.command](args)
    except AssayError as error:
        if args.debug:
            raise
        print(f"assay: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nassay: interrupted; run the same command again to resume where it stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (e.g. `assay show latest | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout at exit; let that go nowhere
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
    finally:
        warnings.formatwarning = shown
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n")).strip()
    return text or type(error).__name__


def _log_to_stderr(args: argparse.Namespace) -> logging.Handler:
    """assay's log lines to stderr: warnings always, one line per stage where no progress bar is drawn."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("assay: %(message)s"))
    logger = logging.getLogger("assay")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet or _progress(args) else logging.INFO)
    logger.propagate = False
    return handler


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal; a log or a pipe gets one line per stage instead."""
    return not args.quiet and sys.stderr.isatty()


def _set_threads(args: argparse.Namespace) -> None:
    """One thread count for torch's intra-op pool and for BLAS/OpenMP (numpy, scikit-learn)."""
    import torch

    n = args.threads or DEFAULT_THREADS
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n)


def _demo_study() -> Path:
    here = Path(__file__).resolve()
    for folder in (Path.cwd() / "examples", here.parents[2] / "examples", here.parent / "examples"):
        if (folder / DEMO_STUDY).is_file():
            return folder / DEMO_STUDY
    from .errors import SpecError

    raise SpecError(f"examples/{DEMO_STUDY}: not found; run 'assay demo' from the project folder or use 'assay run STUDY.toml'")


def _run(args: argparse.Namespace, study_path: Path) -> int:
    from .study import Study

    _set_threads(args)
    study = Study.from_file(study_path, out=args.out, device=args.device, seed=args.seed, progress=_progress(args), new=args.new,
                          quick=getattr(args, "quick", False))
    result = study.run()
    if result.resumed:
        print(f"(resumed unfinished run {result.run_id})")
    print(_summary(result.run_id, result.candidates, result.evidence, result.decision))
    print(f"\nreport:     {result.report}\nmodel card: {result.model_card}")
    return result.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    return _run(args, _demo_study())


def _cmd_run(args: argparse.Namespace) -> int:
    return _run(args, args.study)


def _cmd_compress(args: argparse.Namespace) -> int:
    from ._io import atomic_path
    from .compress import compression_study
    from .errors import SpecError

    if not 0 <= args.max_drop < 1:
        raise SpecError(f"--max-drop: {args.max_drop} is not in [0, 1); give the largest accuracy drop allowed, e.g. 0.01")
    text = compression_study(args.model, args.task, max_drop=args.max_drop, seed=args.seed or 0)
    study = Path(args.out) / f"compress-{args.model.stem}.toml"
    study.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(study) as tmp:
        tmp.write_text(text)
    print(f"study: {study}")
    return _run(args, study)


def _cmd_runs(args: argparse.Namespace) -> int:
    from .store import Store

    rows = Store(args.out).list_runs()
    if not rows:
        print(f"no runs in {args.out}/ yet; try 'assay demo'")
        return 0
    table = [["run", "status", "created", "chosen", "exit"]]
    table += [[r["id"], r["status"], r["created"] or "", r["chosen"] or "-", "" if r["exit_code"] is None else str(r["exit_code"])] for r in rows]
    print(_format_table(table))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .store import Store

    store = Store(args.out)
    run_id = store.resolve(args.run)
    meta = store.run_meta(run_id)
    evidence = store.load_evidence(run_id)
    candidates = store.candidate_descriptions(run_id, dict.fromkeys(e.candidate for e in evidence))
    print(f"run {run_id}  ({meta.get('status')}, created {meta.get('created')}, seed {meta.get('seed')}, device {meta.get('device')})")
    print(f"task {meta.get('task', {}).get('name')}: {meta.get('task', {}).get('sizes')}")
    print(_summary(run_id, candidates, evidence, store.load_decision(run_id)))
    report = store.run_dir(run_id) / "report.html"
    if report.is_file():
        print(f"\nreport: {report}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .store import Store
    from .study import build_report

    _set_threads(args)
    store = Store(args.out)
    html, card = build_report(store, store.resolve(args.run))
    print(f"report:     {html}\nmodel card: {card}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain_input import explain_input, summary
    from .store import Store

    _set_threads(args)
    found = explain_input(Store(args.out), args.run, args.candidate, args.input, method=args.method, row=args.row, device=args.device)
    print(summary(found))
    return 0


_COMMANDS = {"demo": _cmd_demo, "run": _cmd_run, "compress": _cmd_compress, "runs": _cmd_runs, "show": _cmd_show, "report": _cmd_report,
             "explain": _cmd_explain}

def _summary(run_id, candidates, evidence, decision) -> str:
    """Candidates x key metrics (with intervals), gate results and the decision.

    The columns are the policy's metrics, then those the checks declare for the terminal summary, where measured.
    """
    from .checks.base import known_metrics
    from .checks.metrics import TERMINAL, summary_metrics

    table: dict[str, dict[str, str]] = {}
    for e in evidence:
        if e.split == "test":
            table.setdefault(e.candidate, {})[e.metric] = e.interval_text()
    wanted = (*(decision.metrics() if decision else ()), *summary_metrics(TERMINAL, known_metrics().values()))
    metrics = [m for m in dict.fromkeys(wanted) if any(m in row for row in table.values())]
    rows = [["candidate", "recipe", *metrics, "gates"]]
    recipes = {c["name"]: c.get("recipe", "") + (f"({c['parent']})" if c.get("parent") else "") for c in candidates}
    for name in table:
        passed = "-" if decision is None or not decision.gates else ("pass" if name in decision.passed else "reference" if decision.is_reference(name) else "FAIL")
        mark = "* " if decision is not None and name == decision.chosen else "  "
        rows.append([mark + name, recipes.get(name, ""), *(table[name].get(m, "") for m in metrics), passed])
    lines = [f"\nrun {run_id}", _format_table(rows)]
    if decision is not None:
        lines.append(f"\ndecision: {'ship ' + decision.chosen if decision.chosen else 'no candidate passes the gates'}")
        lines.append(f"because:  {decision.reason}")
    return "\n".join(lines)


def _format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) if i < 2 or j == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
