"""Shared pieces of the benchmark scripts: arguments, repeats, the table and the JSON file.

Each script measures its cases side by side in one process, interleaved over ``--repeats`` rounds,
and quotes medians: the machine is shared, so absolute figures drift and ratios are what hold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--smoke``, ``--json`` and ``--repeats``."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="a few seconds, for the test suite")
    p.add_argument("--json", type=Path, default=RESULTS / f"{name}.json", help="output file")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds (median)")
    return p


def machine() -> dict:
    """Where the figures come from: CPU count, load when the run started, versions."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": [round(v, 2) for v in load],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "started_at": datetime.now(timezone.utc).isoformat(),
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def timed(fn) -> float:
    """Seconds one call of ``fn()`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def table(rows: list[dict], columns: list[str], title: str) -> str:
    """A plain-text table of ``rows`` (floats to 4 significant digits)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda items: "  ".join(s.rjust(w) for s, w in zip(items, widths))  # noqa: E731
    return "\n".join(
        [title, line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    )


def write(path: Path, result: dict) -> None:
    """Write the benchmark's JSON (with the machine and command) and say where."""
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), **result}
    result.setdefault("machine", machine())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path}")
