"""Whether a run may write into its ``--out`` folder, and removing an earlier run from it.

A folder holding a run is never written into by a new run, never merged: ``symgrid resume``
continues it, ``--overwrite`` removes it completely first (the folder, and its experiment in a
``--storage``), and a run in which no trial ever started (a grid that never got a slot, Ctrl-C
while Ray started) is removed and replaced without asking, since it holds nothing to lose.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from symgrid.grid.source import SpecError

# A disk that fills mid-run fails trials one by one; refuse a folder that is clearly too small.
# Measured: a tiny trial leaves about 170 KiB (Ray's trial folder, two checkpoints, its records).
BYTES_PER_TRIAL = 256 * 2**10
MIN_FREE_BYTES = 16 * 2**20  # spec, run.json, Ray's experiment state, the tables and the report

__all__ = [
    "refusal",
    "no_room",
    "holds_run",
    "never_started",
    "remove_run",
    "source_file",
    "run_json",
    "note_changed_spec",
    "already_complete",
]


def refusal(out: Path, overwrite: bool) -> str | None:
    """Why a new run may not write into ``out``, or None (nothing is written here)."""
    if not holds_run(out) or overwrite or never_started(out):
        return None
    return (
        f"--out {out}: holds a run already; use `symgrid resume {out}`, --overwrite "
        "(removes that run) or a new --out"
    )


def no_room(out: Path, trials: int) -> str | None:
    """Why ``out`` cannot take a run of ``trials`` trials (not writable, too little free space),
    or None; checked in the nearest folder that exists, so nothing is created here."""
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    try:
        if not parent.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(parent))
        with tempfile.TemporaryFile(dir=parent):
            pass
        free = shutil.disk_usage(parent).free
    except OSError as err:
        return f"--out {out}: cannot write there ({err.strerror or err})"
    need = MIN_FREE_BYTES + trials * BYTES_PER_TRIAL
    if free >= need:
        return None
    return (
        f"--out {out}: only {free / 2**20:.1f} MiB free; {trials} trials need about "
        f"{need / 2**20:.0f} MiB (checkpoints and records); free space or choose another --out"
    )


def holds_run(out: Path) -> bool:
    return (out / "run.json").exists()


def never_started(out: Path) -> bool:
    """Whether no trial of the run in ``out`` ever started: no record, and none of Ray's trial
    folders holds a file (Tune makes an empty folder for each trial waiting for resources)."""
    import pyarrow.fs as pafs
    from symgrid.trainables.records import filesystem

    try:
        info = json.loads((out / "run.json").read_text())
        places = [info["records"], info["experiment_path"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable: not ours to judge, so not ours to remove
    for uri in places:
        fs, path = filesystem(uri)
        entries = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=True))
        base = path.rstrip("/") + "/"
        inside = [e.path.removeprefix(base) for e in entries if e.type == pafs.FileType.File]
        if any("/" in name for name in inside):  # a file in a trial's folder: it started
            return False
    return True


def remove_run(out: Path) -> None:
    """Remove the run in ``out`` completely: the folder, and its experiment in a --storage."""
    try:
        experiment = json.loads((out / "run.json").read_text()).get("experiment_path", "")
    except (OSError, ValueError, AttributeError):  # damaged: the folder goes all the same
        experiment = ""
    if experiment and not Path(experiment).is_relative_to(out):
        import pyarrow.fs as pafs
        from symgrid.trainables.records import filesystem

        fs, path = filesystem(experiment)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)
    shutil.rmtree(out)


def source_file(spec: str) -> dict:
    """Which file a run's spec came from, and its content's hash (resume says when it changed)."""
    path = Path(spec)
    if not path.is_file():
        return {}  # a preset: it changes with symgrid itself, which run.json's version records
    return {"spec_file": str(path.resolve()), "spec_file_sha256": file_hash(path)}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_json(folder: Path) -> dict | None:
    """A run folder's run.json, or None when ``folder`` holds no run."""
    path = folder / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise SpecError(str(path), f"unreadable ({err}); cannot resume") from None


def note_changed_spec(folder: Path, info: dict) -> None:
    """Say when the spec file the run came from has changed since (the run keeps its own)."""
    source = info.get("spec_file")
    if source and Path(source).is_file() and file_hash(Path(source)) != info["spec_file_sha256"]:
        print(
            f"symgrid: note: {source} changed since this run started; the run goes on with its"
            f" stored spec ({folder / 'spec.yaml'}); `symgrid run {source} --out NEW` runs the"
            " new one",
            file=sys.stderr,
        )


def already_complete(folder: Path, info: dict, finished: int) -> bool:
    """Say so when every trial of the run has its final record (``finished`` of them) and the
    tables were built (a run whose storage failed during the final copy has records, no tables:
    resume builds them)."""
    if finished < info.get("trials", 0) or not (folder / "trials.parquet").exists():
        return False
    print(
        f"symgrid: {folder}: already complete ({finished}/{info['trials']} trials have results);"
        f" `symgrid report {folder}` rewrites its tables and report",
        file=sys.stderr,
    )
    return True
