"""Shared fixtures (pytest finds them here; no test imports them) and the test markers' meaning.

Markers (registered in pyproject.toml): ``slow`` (more than a few seconds: real grids,
subprocesses, clusters), ``ray`` (starts a real Ray), ``cluster`` (a multi-node local cluster).
``python -m pytest -m "not slow"`` is the quick loop; ``python -m pytest`` runs everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runfolder import make_run_folder


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory) -> Path:
    """The small real run folder of ``tests/runfolder.py`` (built once per session; copy it
    before changing it)."""
    return make_run_folder(tmp_path_factory.mktemp("run"))
