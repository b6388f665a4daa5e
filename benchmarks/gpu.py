"""GPU sharing: one trial alone on a GPU vs four trials sharing it (gpu: 0.25 each).

Each trial is a worker process running ``Trainer.train_epoch`` on the GPU with fresh symbols every
epoch (drawn on the CPU, as every random stream is, and moved to the GPU), one CPU thread as a Ray
trial with ``cpu: 1`` gets. The four workers warm up, wait for a common start signal, then train;
the aggregate rate is all their symbols over the span from the first start to the last finish.
Small per-symbol networks leave a GPU mostly idle between kernel launches, which is what sharing
recovers.

    python benchmarks/gpu.py                 # needs CUDA; ~1-2 minutes
    python benchmarks/gpu.py --smoke         # without CUDA: prints "no GPU" and exits 0
    python benchmarks/gpu.py --device cpu    # the same procedure on the CPU (checks the script)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from common import machine, median, parser, table, write

BATCH_SIZES = (4096, 32768)
MODEL = {"model": {"name": "mlp", "hidden": [64, 64]}}  # the network that reaches the MAP limit


def worker(device: str, batch_size: int, symbols: int, epochs: int) -> None:
    """One trial's training loop; prints 'ready', waits for 'go', prints its timings as JSON."""
    import torch
    from symgrid.trainables.config import parse_trial_config
    from symgrid.trainables.trial import Trainer

    torch.set_num_threads(1)
    train = {"symbols": symbols, "fresh_each_epoch": True, "val_symbols": 4096}
    train.update(batch_size=batch_size, epochs=epochs + 1)
    trainer = Trainer(parse_trial_config({**MODEL, "train": train}), device)
    trainer.step()  # warm-up: CUDA context, kernels, allocator
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    sync()
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.time()
    for _ in range(epochs):
        trainer.train_epoch()
    sync()
    print(json.dumps({"start": start, "end": time.time(), "symbols": symbols * epochs}), flush=True)


def run_together(count: int, device: str, batch_size: int, symbols: int, epochs: int) -> dict:
    """``count`` workers started together; per-worker and aggregate symbols/s."""
    cmd = [sys.executable, __file__, "--worker", device, str(batch_size), str(symbols), str(epochs)]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker failed: {proc.wait()}")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    rates = [r["symbols"] / (r["end"] - r["start"]) for r in results]
    return {"per_trial": median(rates), "aggregate": sum(r["symbols"] for r in results) / span}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        device, *numbers = sys.argv[2:]
        worker(device, *map(int, numbers))
        return
    p = parser("gpu", __doc__)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu to check the script")
    p.add_argument("--sharing", type=int, default=4, help="trials sharing the device")
    args = p.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False; nothing measured")
        if args.smoke:
            write(args.json, {"benchmark": "gpu", "gpu_available": False, "machine": machine()})
        sys.exit(0 if args.smoke else 1)
    info = machine()
    symbols, epochs = (1 << 16, 1) if args.smoke else (1 << 21, 5)
    batch_sizes = BATCH_SIZES[:1] if args.smoke else BATCH_SIZES
    rows = []
    for batch in batch_sizes:
        alone = run_together(1, args.device, batch, symbols, epochs)
        shared = run_together(args.sharing, args.device, batch, symbols, epochs)
        rows.append(
            {
                "batch_symbols": batch,
                "alone_msym_per_s": alone["aggregate"] / 1e6,
                "shared_per_trial_msym_per_s": shared["per_trial"] / 1e6,
                "shared_aggregate_msym_per_s": shared["aggregate"] / 1e6,
                "aggregate_speedup": shared["aggregate"] / alone["aggregate"],
            }
        )
    cols = list(rows[0])
    title = f"{args.sharing} trials sharing {args.device} ({info['cuda'] or 'cpu'}), mlp 64x64"
    print(table(rows, cols, title))
    result = {"benchmark": "gpu", "gpu_available": args.device.startswith("cuda")}
    write(args.json, {**result, "device": args.device, "machine": info, "rows": rows})


if __name__ == "__main__":
    main()
