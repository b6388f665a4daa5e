"""Whether one trial's resources can ever fit the cluster, checked before anything is written.

A trial is placed on one node, so it fits when some node has at least its CPUs and its GPUs; on a
cluster with an autoscaler, when some node type the autoscaler may still add has them. A grid that
can never fit would wait forever at ``0 running``: it is refused in one line instead, naming the
resource, what a trial asks and what the cluster has.
"""

from __future__ import annotations

import os
from pathlib import Path

from symgrid.grid import outdir

__all__ = ["refusal", "before_start", "on_cluster", "cannot_fit"]

RESOURCES = {"cpu": "CPU", "gpu": "GPU"}  # the spec's name -> Ray's name


def refusal(spec, trials: int, out: Path, overwrite: bool, ray_args: dict) -> str | None:
    """Why a run of ``spec`` (``trials`` trials into ``out``) cannot start, from what is known
    before Ray starts: the folder (``grid.outdir``) and the trial's resources against the machine.
    """
    wanted = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    why = outdir.refusal(out, overwrite) or outdir.no_room(out, trials)
    return why or before_start(wanted, ray_args)


def before_start(wanted: dict, ray_args: dict) -> str | None:
    """Why a trial can never fit the embedded Ray about to start, or None (no Ray needed yet).

    ``wanted``: the spec's resources (``gpu`` may be ``"auto"``, which always fits);
    ``ray_args``: ``address``, ``num_cpus``, ``num_gpus`` as given. A cluster (``address``) is
    checked once joined (:func:`on_cluster`). No Ray here: this runs before Ray is imported.
    """
    if ray_args.get("address"):
        return None
    cpus = ray_args.get("num_cpus")
    # Ray counts os.cpu_count() or a lower container quota: an upper bound, checked without Ray
    # (which takes seconds to import); on_cluster checks Ray's own count once it is up.
    node = {"CPU": os.cpu_count() if cpus is None else cpus}
    request = {"cpu": wanted["cpu"]}
    if ray_args.get("num_gpus") is not None and wanted["gpu"] != "auto":
        node["GPU"], request["gpu"] = ray_args["num_gpus"], wanted["gpu"]
    return cannot_fit(request, [node], [], "the embedded Ray", "--num-cpus/--num-gpus")


def on_cluster(resources: dict, address: str | None) -> str | None:
    """Why a trial asking ``resources`` never fits the Ray this driver is connected to, or None."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    where = f"the cluster at {address}" if address else "the embedded Ray"
    hint = "a cluster with bigger nodes" if address else "--num-cpus/--num-gpus"
    return cannot_fit(resources, nodes, autoscaling_node_types(), where, hint)


def cannot_fit(
    request: dict, nodes: list[dict], node_types: list[dict], where: str, hint: str
) -> str | None:
    """Why a trial asking ``request`` ({"cpu": 1, "gpu": 0.25}) never fits, or None when it can.

    Parameters
    ----------
    nodes : the resources of each alive node (Ray's names: ``{"CPU": 2.0, "GPU": 1.0}``)
    node_types : the resources of each node type an autoscaler may still start (may be empty)
    where : how the cluster is named in the message (``"the embedded Ray"``)
    hint : what else could give a trial room (``"--num-cpus/--num-gpus"``)
    """
    for resources in [*nodes, *node_types]:
        if all(resources.get(RESOURCES[k], 0) >= v for k, v in request.items() if v):
            return None
    for key, value in request.items():
        if not value:
            continue
        have = max((r.get(RESOURCES[key], 0) for r in [*nodes, *node_types]), default=0)
        if have < value:
            on = " on its largest node" if len(nodes) + len(node_types) > 1 else ""
            return (
                f"resources.{key}: a trial asks {value:g} {RESOURCES[key]}, {where} has"
                f" {have:g}{on}; no trial could ever start: lower resources.{key} in the spec,"
                f" or use {hint}"
            )
    return (  # every resource fits on some node, but never all of them on the same node
        f"resources: a trial asks {request}, and no node of {where} has all of it at once: "
        f"{[{k: r.get(v, 0) for k, v in RESOURCES.items()} for r in nodes]}"
    )


def autoscaling_node_types() -> list[dict]:
    """Resources of each node type the cluster's autoscaler may still add (none without one).

    Read from the cluster config the autoscaler publishes in Ray's GCS, as Tune's own "insufficient
    resources" check does; a cluster started by hand (``ray start``) or an embedded Ray has none.
    """
    from ray._private.state import state

    config = state.get_cluster_config()
    if config is None:
        return []
    return [dict(group.resources) for group in config.node_group_configs if group.max_count != 0]
