"""``symgrid trial CONFIG --out DIR``: one trial in-process, without Ray, printed for people.

Like ``symgrid run``, it never writes over an earlier result: a DIR holding a trial (or a run) is
refused unless ``--overwrite``, which removes it completely first. Printed figures are rounded;
the files keep full precision.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from symgrid.grid.source import SpecError, load_yaml

__all__ = ["cmd_trial", "check_writable"]

HELD = ("trial.json", "run.json")  # a folder holding either has a result to keep


def cmd_trial(args) -> int:
    from symgrid.trainables.config import config_to_dict, parse_trial_config
    from symgrid.trainables.records import write_trial_dir
    from symgrid.trainables.trial import run_trial

    if not args.config.is_file():
        what = "is a directory, not a trial config" if args.config.is_dir() else "no such file"
        raise SpecError(str(args.config), what)
    config = config_to_dict(parse_trial_config(load_yaml(args.config)))  # errors before writing
    check_writable(args.out)  # before training, not after
    held = [name for name in HELD if (args.out / name).exists()]
    if held and not args.overwrite:
        raise SpecError(
            f"--out {args.out}",
            f"holds a result already ({held[0]}); use --overwrite or a new --out",
        )
    print(
        f"{'epoch':>5} {'lr':>9} {'train_loss':>10} {'val_loss':>9} {'train_ber':>9} {'val_ber':>8}"
    )
    fmt = "{epoch:5d} {lr:9.2e} {train_loss:10.4f} {val_loss:9.4f} {train_ber:9.4f} {val_ber:8.4f}"
    outcome = run_trial(config, lambda row, trainer: print(fmt.format(**row), flush=True))
    if held:  # --overwrite: the old result goes completely, never merged with the new one
        shutil.rmtree(args.out)
    write_trial_dir(outcome, args.trial_id, args.out, {"axes": {}, "config": config})
    print_sweep(outcome)
    ratio, zero = outcome.summary["ber_ratio_map"], outcome.summary["points_no_map_errors"]
    shown = f"{ratio:.3f}" if ratio is not None else "none"
    print(f"ber_ratio_map: {shown} ({zero} points without MAP errors); records in {args.out}")
    return 0 if outcome.status == "completed" else 1


def print_sweep(outcome) -> None:
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
