"""The ``symgrid`` command: run, confirm, resume, validate, presets, trial, report.

Bad input is one line on stderr naming the field and what is allowed, exit code 2, and nothing
written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from symgrid.grid.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from symgrid.grid.source import SpecError, preset_names
from symgrid.grid.trial_command import cmd_trial
from symgrid.trainables.schema import ConfigError

__all__ = ["address", "build_parser", "main"]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> Parser:
    parser = Parser(prog="symgrid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="run a grid (a spec file or a preset name)")
    run.add_argument("spec")
    run.add_argument("--out", type=Path, help="output folder (default: results/<name>)")
    run.add_argument("--yes", action="store_true", help="allow grids over 10,000 trials")
    add_overwrite(run)
    add_ray_options(run)

    confirm = sub.add_parser(
        "confirm", help="re-run the best settings of a run on fresh seeds, as a linked run"
    )
    confirm.add_argument("dir", type=Path, help="the screening run folder")
    confirm.add_argument("--top", type=positive, default=3, help="how many settings (default 3)")
    confirm.add_argument("--seeds", type=positive, default=5, help="fresh seeds (default 5)")
    confirm.add_argument("--out", type=Path, help="output folder (default: DIR-confirm)")
    add_overwrite(confirm)
    add_ray_options(confirm)

    resume = sub.add_parser(
        "resume", help="continue an interrupted run (the Ray options may change, the trials not)"
    )
    resume.add_argument("dir", type=Path)
    add_cluster_options(resume)
    resume.add_argument("--no-report", action="store_true", help="skip the report at the end")
    resume.add_argument("--verbose", action="store_true", help="show Ray's own output")

    validate = sub.add_parser("validate", help="check a spec; print axes, trial count, cost")
    validate.add_argument("spec")
    validate.add_argument("--yes", action="store_true")
    validate.add_argument("--slots", type=int, help="trials at once for the wall time estimate")

    sub.add_parser("presets", help="list the shipped presets")

    report = sub.add_parser("report", help="write the comparison report of one or more runs")
    report.add_argument("dirs", nargs="+", type=Path)
    report.add_argument(
        "--out", type=Path, help="report folder (default: DIR/report for one run; several need it)"
    )
    report.add_argument(
        "--metric",
        choices=["ber_ratio_map", "rate_gap"],
        help="figure of merit to rank and test by (default: the spec's metric key)",
    )

    trial = sub.add_parser("trial", help="run one trial config in-process (no Ray)")
    trial.add_argument("config", type=Path)
    trial.add_argument("--out", type=Path, required=True)
    trial.add_argument("--trial-id", default="t0000")
    add_overwrite(trial, "trial")
    return parser


def add_overwrite(parser: argparse.ArgumentParser, what: str = "run") -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"remove the {what} already in the output folder completely first (never merges)",
    )


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where trials run and how many at once (``run``, ``confirm`` and ``resume``)."""
    parser.add_argument(
        "--address", type=address, help="join a Ray cluster: auto or ray://HOST:PORT"
    )
    parser.add_argument("--num-cpus", type=positive, help="CPUs of the embedded local Ray")
    parser.add_argument(
        "--num-gpus", type=non_negative, help="GPUs (logical ones too) of the embedded local Ray"
    )
    parser.add_argument("--max-concurrent", type=positive, help="at most this many trials at once")


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """Where and how a grid runs, and what it prints (``run`` and ``confirm``)."""
    add_cluster_options(parser)
    parser.add_argument("--storage", help="Ray storage URI (s3://, gs://, shared path)")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own output")
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help="write live TensorBoard event files to DIR/tensorboard/<trial_id>/",
    )
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        metavar="URI",
        help="log every trial to MLflow: a tracking server URI, or none for DIR/mlflow "
        "(needs the extra symgrid[tracking])",
    )


def positive(text: str) -> int:
    """An integer ≥ 1 (argparse type): a one-line error naming the value otherwise."""
    return at_least(text, 1)


def non_negative(text: str) -> int:
    """An integer ≥ 0 (argparse type)."""
    return at_least(text, 0)


def at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer ≥ {low}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is not an integer ≥ {low}")
    return value


def address(text: str) -> str:
    """A Ray address (argparse type): ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``."""
    host, colon, port = text.removeprefix("ray://").rpartition(":")
    if text == "auto" or (colon and host and port.isdigit() and 0 < int(port) < 65536):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not auto, ray://HOST:PORT or HOST:PORT")


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()  # the progress line's clock counts Ray's start too
    args = build_parser().parse_args(argv)
    args.started = started
    # A user's network module imports from the current folder, as under `python -m symgrid`
    # (last on the path: it shadows nothing installed).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    from symgrid.errors import SymgridError

    try:
        return COMMANDS[args.command](args)
    except SymgridError as err:  # the API's one line: bad input (2) or a file (1)
        print(f"symgrid: error: {err}", file=sys.stderr)
        return err.code
    except (SpecError, ConfigError) as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("symgrid: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:  # a file we could not read or write: one line, never a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"symgrid: error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


def cmd_run(args) -> int:
    import symgrid

    return symgrid.run(
        args.spec, out=args.out, yes=args.yes, report=not args.no_report, **run_options(args)
    ).code


def cmd_confirm(args) -> int:
    import symgrid

    options = dict(top=args.top, seeds=args.seeds, out=args.out, report=not args.no_report)
    return symgrid.confirm(args.dir, **options, **run_options(args)).code


def run_options(args) -> dict:
    """The options ``run`` and ``confirm`` share, as the Python API's keyword arguments."""
    command = shlex.join(["symgrid", *sys.argv[1:]]) if sys.argv[1:] else f"symgrid {args.command}"
    return dict(
        address=args.address,
        storage=args.storage,
        num_cpus=args.num_cpus,
        num_gpus=args.num_gpus,
        max_concurrent=args.max_concurrent,
        verbose=args.verbose,
        tensorboard=args.tensorboard,
        mlflow=args.mlflow,
        overwrite=args.overwrite,
        command=command,
        started=args.started,
    )


def cmd_resume(args) -> int:
    import symgrid
    from symgrid.api import RAY_OPTIONS

    options = {k: getattr(args, k) for k in RAY_OPTIONS}
    run = symgrid.resume(
        args.dir, report=not args.no_report, verbose=args.verbose, started=args.started, **options
    )
    return run.code


def cmd_validate(args) -> int:
    import symgrid

    print(symgrid.validate(args.spec, yes=args.yes, slots=args.slots))
    return 0


def cmd_presets(args) -> int:
    from symgrid.grid.spec import load_spec

    for name in preset_names():
        spec = load_spec(name, allow_large=True)
        print(f"{name:15s} {spec.trial_count:6d} trials  {spec.description}")
    return 0


def cmd_report(args) -> int:
    from symgrid.analysis.report import ReportError, write_report

    try:
        print(write_report(args.dirs, args.out, args.metric))
    except ReportError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


COMMANDS = {
    "run": cmd_run,
    "confirm": cmd_confirm,
    "resume": cmd_resume,
    "validate": cmd_validate,
    "presets": cmd_presets,
    "report": cmd_report,
    "trial": cmd_trial,
}


if __name__ == "__main__":
    sys.exit(main())
