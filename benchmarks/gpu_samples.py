"""Device check: a trial on a GPU sees exactly the samples it sees on the CPU.

Every random stream of a trial is a CPU ``torch.Generator`` and every sample is drawn on the CPU,
then moved to the trial's device (``trainables/channel.py``), so a seed means the same training,
validation and test samples on a CPU node and a GPU node, and the paired comparisons stay paired
across a mixed cluster. This script checks it where a GPU exists: two Trainers of one config, one
on the CPU and one on ``--device``, must hold equal training and validation sets and equal
generator states after a step; two whole trials must test on equal bit budgets and store equal
bias-variance samples and posteriors. It exits 1 on the first difference.

    python benchmarks/gpu_samples.py                  # needs CUDA; a few seconds
    python benchmarks/gpu_samples.py --device cpu     # the same comparison, CPU against CPU
    python benchmarks/gpu_samples.py --smoke          # without CUDA: CPU against CPU, exits 0
"""

from __future__ import annotations

import sys

import numpy as np
from common import machine, parser, write

# Small, with every stream a trial draws from (dropout included) and two test points.
CONFIG = {
    "train": {"ebno_db": [0, 10], "symbols": 8192, "val_symbols": 4096, "batch_size": 512,
              "epochs": 2},
    "model": {"hidden": [32]},
    "regularization": "dropout",
    "eval": {"ebno_db": [2, 8], "min_errors": 100, "max_bits": 40_000, "biasvar_symbols": 256},
}  # fmt: skip


def differences(device: str) -> list[str]:
    """What differs between the config's trial on the CPU and on ``device`` (empty: nothing)."""
    import torch
    from symgrid.trainables.config import parse_trial_config
    from symgrid.trainables.trial import Trainer, run_trial

    cfg = parse_trial_config(CONFIG)
    cpu, other = Trainer(cfg, "cpu"), Trainer(cfg, device)
    found = []
    for name in ("train_set", "val_set"):
        for field in ("y", "no", "symbol_index"):
            a, b = getattr(getattr(cpu, name), field), getattr(getattr(other, name), field)
            if not torch.equal(a, b.cpu()):
                found.append(f"{name}.{field}")
    cpu.step(), other.step()
    for name, gen in cpu.generators().items():
        if not torch.equal(gen.get_state(), other.generators()[name].get_state()):
            found.append(f"generator {name} after a step")
    a, b = run_trial(CONFIG), run_trial(CONFIG, device=device)
    if b.summary["device"] != torch.device(device).type:
        found.append(f"the trial ran on {b.summary['device']}, not {device}")
    if [p["bits"] for p in a.ber] != [p["bits"] for p in b.ber]:
        found.append("test bit budgets")
    if [p["errors_map"] for p in a.ber] != [p["errors_map"] for p in b.ber]:
        found.append("MAP errors on the test samples")
    for e, pred in a.predictions.items():
        if not np.array_equal(pred.y, b.predictions[e].y):
            found.append(f"bias-variance samples at {e} dB")
        if not np.array_equal(pred.eta, b.predictions[e].eta):
            found.append(f"posterior at {e} dB")
    return found


def main() -> None:
    p = parser("gpu_samples", __doc__)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu")
    args = p.parse_args()
    import torch

    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        if not args.smoke:
            print("no GPU: torch.cuda.is_available() is False; nothing checked")
            sys.exit(1)
        device = "cpu"  # the smoke test checks the script itself
    found = differences(device)
    print(f"cpu against {device}: " + ("identical samples" if not found else ", ".join(found)))
    write(args.json, {"benchmark": "gpu_samples", "device": device, "differences": found,
                      "machine": machine()})  # fmt: skip
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
