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

from symgrid.grid import fit, outdir
from symgrid.grid.source import SpecError, preset_names
from symgrid.grid.trial_command import cmd_trial
from symgrid.trainables.schema import ConfigError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C; `symgrid resume DIR` finishes the run
RAY_OPTIONS = ("address", "num_cpus", "num_gpus", "max_concurrent")  # resume may change these


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
    try:
        return COMMANDS[args.command](args)
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
    from symgrid.grid.outdir import source_file
    from symgrid.grid.spec import expand, load_spec  # torch loads here, not for --help

    spec = load_spec(args.spec, allow_large=args.yes)
    out = args.out or Path("results") / spec.name
    return launch(args, spec, expand(spec), out, "symgrid run", source_file(args.spec))


def cmd_confirm(args) -> int:
    from symgrid.grid.confirm import confirm_spec
    from symgrid.trainables.network import load_classes

    load_classes(args.dir)  # network classes the run was given as objects
    spec, trials, link = confirm_spec(args.dir, args.top, args.seeds)
    out = args.out or args.dir.parent / f"{args.dir.name}-confirm"
    return launch(args, spec, trials, out, "symgrid confirm", link)


def refused(*refusals: str | None) -> bool:
    """Print the first refusal (one line) and say whether there was one."""
    first = next((r for r in refusals if r), None)
    if first:
        print(f"symgrid: error: {first}", file=sys.stderr)
    return first is not None


def starting(args) -> None:
    """The first line, printed before Ray is imported (which takes seconds)."""
    if args.address:
        print(f"joining the Ray cluster at {args.address}…", file=sys.stderr, flush=True)
        return
    cpus = args.num_cpus if args.num_cpus is not None else os.cpu_count()
    gpus = f"{args.num_gpus} GPUs" if args.num_gpus is not None else "GPUs as detected"
    print(f"starting Ray ({cpus} CPUs, {gpus})…", file=sys.stderr, flush=True)


def launch(args, spec, trials, out: Path, default: str, extra: dict | None = None) -> int:
    """Run the trials on Ray (``run`` and ``confirm``), then the report and the closing lines."""
    if args.mlflow is not None:
        from symgrid.grid.tracking import check_mlflow  # imports Ray: only when asked for

        check_mlflow(args.mlflow, args.verbose)  # the extra and the server, before any folder
    wanted, where = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}, out.resolve()
    if refused(
        outdir.refusal(where, args.overwrite),
        outdir.no_room(where, len(trials)),
        fit.before_start(wanted, vars(args)),
    ):
        return EXIT_BAD_INPUT
    starting(args)
    from symgrid.grid.run import RunError, TablesError, run_grid  # Ray loads only now
    from symgrid.grid.tracking import tracking_callbacks

    command = shlex.join(["symgrid", *sys.argv[1:]]) if sys.argv[1:] else default
    try:
        code = run_grid(
            spec,
            trials,
            out,
            address=args.address,
            storage=args.storage,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            max_concurrent=args.max_concurrent,
            verbose=args.verbose,
            command=command,
            extra=extra,
            tracking=lambda o: tracking_callbacks(
                o, spec, trials, args.mlflow, args.verbose, args.tensorboard
            ),
            overwrite=args.overwrite,
            started=args.started,
        )
    except RunError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TablesError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return 1
    return closing(out, code, args.no_report)


def closing(out: Path, code: int, skip_report: bool) -> int:
    """The report and the run's answer at the end of run and resume (``grid.result``).

    An interrupted run gets neither: both come when `symgrid resume` finishes the run."""
    if code == EXIT_INTERRUPTED:
        return code
    from symgrid.grid.result import conclude

    result, code = conclude(out, code, skip_report)
    if result is not None:
        print("\n".join(f"[{out.name}] {line}" for line in result.lines()), file=sys.stderr)
    return code


def cmd_resume(args) -> int:
    from symgrid.grid.outdir import already_complete, note_changed_spec, run_json

    info = run_json(args.dir)
    if info is None:
        print(
            f"symgrid: error: {args.dir}: not a symgrid run folder (no run.json)", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    note_changed_spec(args.dir, info)
    if already_complete(args.dir, info):
        return 0
    options = {k: getattr(args, k) for k in RAY_OPTIONS}
    given = {k: v for k, v in options.items() if v is not None}
    cluster = {**dict.fromkeys(RAY_OPTIONS), **(info.get("ray") or {}), **given}
    if refused(fit.before_start(info.get("resources", {"cpu": 0, "gpu": 0}), cluster)):
        return EXIT_BAD_INPUT
    starting(argparse.Namespace(**cluster))
    from symgrid.grid.resume import resume_grid
    from symgrid.grid.run import RunError, TablesError

    try:
        code = resume_grid(args.dir, options, verbose=args.verbose, started=args.started)
    except RunError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TablesError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return 1
    return closing(args.dir, code, args.no_report)


def cmd_validate(args) -> int:
    from symgrid.grid.spec import describe, load_spec

    spec = load_spec(args.spec, allow_large=args.yes)
    print(describe(spec, args.slots))
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
