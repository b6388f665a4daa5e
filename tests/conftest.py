"""Shared fixtures (pytest finds them here; no test imports them) and the test markers' meaning.

Markers (registered in pyproject.toml): ``slow`` (more than a few seconds: real grids,
subprocesses, clusters), ``ray`` (starts a real Ray), ``cluster`` (a multi-node local cluster).
``python -m pytest -m "not slow"`` is the quick loop; ``python -m pytest`` runs everything.
The loopback S3 server, a proxy in front of it and a fresh bucket come from
``tests/storagefixtures.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runfolder import make_run_folder
from storagefixtures import aws_env, bucket, proxy, s3_server  # noqa: F401


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """The small real run folder of ``tests/runfolder.py`` (built once per session; copy it
    before changing it)."""
    return make_run_folder(tmp_path_factory.mktemp("run"))
