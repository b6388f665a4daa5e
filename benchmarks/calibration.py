"""Calibration of the report's seed-level inference: coverage and false-positive rates by seeds.

Simulated grids (``analysis.calibration``: seed main effects, axis x seed and setting x seed
noise, the trial's own sampling noise, known true effects) go through the arithmetic the report
uses. Per seed count it prints the share of true contrasts inside their Bonferroni 95 % intervals
(each, and all of a grid's at once), the family-wise false-positive rate of null grids (main
effects; the interaction F-test), and the same for the replaced analysis that took every block
as a replicate.

    python benchmarks/calibration.py            # 20,000 grids per seed count
    python benchmarks/calibration.py --smoke    # 500, for the test suite
"""

from __future__ import annotations

import time

from common import parser, table, write
from symgrid.analysis.calibration import NOISE, TRUE, calibration_table

COLUMNS = ["seeds", "method", "grids", "coverage", "simultaneous_coverage", "fwer_null"]
COLUMNS += ["interaction_fwer_null", "power_true_effects"]


def main() -> None:
    p = parser("calibration", __doc__)
    p.add_argument("--grids", type=int, default=None, help="simulated grids per seed count")
    args = p.parse_args()
    grids = args.grids or (500 if args.smoke else 20_000)
    start = time.perf_counter()
    rows = calibration_table(grids)
    seconds = time.perf_counter() - start
    print(table(rows, COLUMNS, f"Seed-level inference, {grids} simulated grids per seed count"))
    print(f"{seconds:.1f} s")
    write(
        args.json,
        {
            "benchmark": "calibration",
            "grids": grids,
            "noise_sd": NOISE,
            "true_effects": TRUE,
            "seconds": seconds,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
