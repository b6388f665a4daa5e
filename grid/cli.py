"""The ``symgrid`` command: run, confirm, resume, validate, presets, trial, report.

Bad input is one line on stderr naming the field and what is allowed, exit code 2, and nothing
written.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from symgrid.grid.source import SpecError, load_yaml, preset_names
from symgrid.grid.spec import describe, expand, load_spec
from symgrid.trainables.schema import ConfigError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C; `symgrid resume DIR` finishes the run


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
    add_ray_options(run)

    confirm = sub.add_parser(
        "confirm", help="re-run the best settings of a run on fresh seeds, as a linked run"
    )
    confirm.add_argument("dir", type=Path, help="the screening run folder")
    confirm.add_argument("--top", type=positive, default=3, help="how many settings (default 3)")
    confirm.add_argument("--seeds", type=positive, default=5, help="fresh seeds (default 5)")
    confirm.add_argument("--out", type=Path, help="output folder (default: DIR-confirm)")
    add_ray_options(confirm)

    resume = sub.add_parser("resume", help="continue an interrupted run")
    resume.add_argument("dir", type=Path)
    resume.add_argument("--no-report", action="store_true")
    resume.add_argument("--verbose", action="store_true")

    validate = sub.add_parser("validate", help="check a spec; print axes, trial count, cost")
    validate.add_argument("spec")
    validate.add_argument("--yes", action="store_true")
    validate.add_argument("--slots", type=int, help="trials at once for the wall time estimate")

    sub.add_parser("presets", help="list the shipped presets")

    report = sub.add_parser("report", help="write the comparison report of one or more runs")
    report.add_argument("dirs", nargs="+", type=Path)
    report.add_argument("--out", type=Path, help="report folder (default: DIR/report)")
    report.add_argument(
        "--metric",
        choices=["ber_ratio_map", "rate_gap"],
        help="figure of merit to rank and test by (default: the spec's metric key)",
    )

    trial = sub.add_parser("trial", help="run one trial config in-process (no Ray)")
    trial.add_argument("config", type=Path)
    trial.add_argument("--out", type=Path, required=True)
    trial.add_argument("--trial-id", default="t0000")
    return parser


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """Where and how a grid runs, and what it prints (``run`` and ``confirm``)."""
    parser.add_argument("--address", help="join a Ray cluster: auto or ray://host:10001")
    parser.add_argument("--storage", help="Ray storage URI (s3://, gs://, shared path)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the embedded local Ray")
    parser.add_argument("--num-gpus", type=int, help="GPUs (logical ones too) of the local Ray")
    parser.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer ≥ 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not an integer ≥ 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    spec = load_spec(args.spec, allow_large=args.yes)
    out = args.out or Path("results") / spec.name
    return launch(args, spec, expand(spec), out, "symgrid run")


def cmd_confirm(args) -> int:
    from symgrid.grid.confirm import confirm_spec

    spec, trials, link = confirm_spec(args.dir, args.top, args.seeds)
    out = args.out or args.dir.parent / f"{args.dir.name}-confirm"
    return launch(args, spec, trials, out, "symgrid confirm", link)


def launch(args, spec, trials, out: Path, default: str, extra: dict | None = None) -> int:
    """Run the trials on Ray (``run`` and ``confirm``), then the report."""
    from symgrid.grid.run import RunError, run_grid  # Ray is imported only when a run starts
    from symgrid.grid.tracking import check_mlflow, tracking_callbacks

    command = shlex.join(["symgrid", *sys.argv[1:]]) if sys.argv[1:] else default
    try:
        if args.mlflow is not None:
            check_mlflow(args.mlflow, args.verbose)  # the extra and the server, before any folder
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
        )
    except RunError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return final_report(out, code, args.no_report)


def final_report(out: Path, code: int, skip: bool) -> int:
    """The report at the end of run and resume; a report problem does not hide the run's code.
    An interrupted run gets none: it is written when `symgrid resume` finishes the run."""
    if skip or code == EXIT_INTERRUPTED:
        return code
    from symgrid.analysis.report import ReportError, write_report

    try:
        print(f"report: {write_report([out])}", file=sys.stderr)
    except ReportError as err:
        print(f"symgrid: report not written: {err}", file=sys.stderr)
        return code or 1
    return code


def cmd_resume(args) -> int:
    from symgrid.grid.run import RunError, resume_grid

    if not (args.dir / "run.json").exists() or not (args.dir / "spec.yaml").exists():
        print(
            f"symgrid: error: {args.dir}: not a symgrid run folder (no run.json)", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    spec = load_spec(str(args.dir / "spec.yaml"), allow_large=True)
    try:
        code = resume_grid(args.dir, spec, verbose=args.verbose)
    except RunError as err:
        print(f"symgrid: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return final_report(args.dir, code, args.no_report)


def cmd_validate(args) -> int:
    spec = load_spec(args.spec, allow_large=args.yes)
    print(describe(spec, args.slots))
    return 0


def cmd_presets(args) -> int:
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


def cmd_trial(args) -> int:
    from symgrid.trainables.config import config_to_dict, parse_trial_config
    from symgrid.trainables.records import write_trial_dir
    from symgrid.trainables.trial import run_trial

    if not args.config.is_file():
        what = "is a directory, not a trial config" if args.config.is_dir() else "no such file"
        raise SpecError(str(args.config), what)
    config = config_to_dict(parse_trial_config(load_yaml(args.config)))  # errors before writing
    check_writable(args.out)  # before training, not after
    print(
        f"{'epoch':>5} {'lr':>9} {'train_loss':>10} {'val_loss':>9} {'train_ber':>9} {'val_ber':>8}"
    )
    fmt = "{epoch:5d} {lr:9.2e} {train_loss:10.4f} {val_loss:9.4f} {train_ber:9.4f} {val_ber:8.4f}"
    outcome = run_trial(config, lambda row, trainer: print(fmt.format(**row), flush=True))
    write_trial_dir(outcome, args.trial_id, args.out, {"axes": {}, "config": config})
    print(
        f"\nstatus: {outcome.status}; Eb/N0 sweep against the bitwise-MAP detector (same samples):"
    )
    print(f"{'Eb/N0 dB':>8} {'bits':>10} {'ber':>10} {'ber_map':>10} {'ratio':>6} {'mcnemar_p':>9}")
    for p in outcome.ber:
        ratio = p["ber"] / p["ber_map"] if p["ber_map"] else float("nan")
        print(
            f"{p['ebno_db']:8.1f} {p['bits']:10d} {p['ber']:10.3e} {p['ber_map']:10.3e}"
            f" {ratio:6.3f} {p['mcnemar_p']:9.2g}"
        )
    ratio, zero = outcome.summary["ber_ratio_map"], outcome.summary["points_no_map_errors"]
    print(f"ber_ratio_map: {ratio} ({zero} points without MAP errors); records in {args.out}")
    return 0 if outcome.status == "completed" else 1


def check_writable(out: Path) -> None:
    """A one-line SpecError when ``out`` cannot be a folder we write into (nothing is created)."""
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not parent.is_dir():
        raise SpecError(f"--out {out}", f"{parent} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise SpecError(f"--out {out}", f"cannot write in {parent} ({err.strerror})") from None


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
