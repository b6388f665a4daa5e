"""Fixtures for the storage tests: one moto S3 server for the session (``tests/s3server.py``), a
TCP proxy in front of it per test (``tests/tcpproxy.py``: cut the network, the data stays), and
the AWS variables every client of it reads. Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import secrets

import pytest
from raycluster import free_ports
from s3server import CREDENTIALS, S3Server
from tcpproxy import Proxy

_SERVER: dict[str, S3Server] = {}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(free_ports(1)[0], tmp_path_factory.mktemp("s3") / "moto.log")
    server.start()
    _SERVER["s3"] = server
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    return dict(CREDENTIALS)


@pytest.fixture
def bucket(s3_server, aws_env) -> str:
    name = f"symgrid-{secrets.token_hex(4)}"
    s3_server.create_bucket(name)
    return name


@pytest.fixture
def proxy(s3_server):
    """127.0.0.1:PORT forwarded to the S3 server; ``proxy.cut()`` / ``proxy.restore()``."""
    front = Proxy(free_ports(1)[0], s3_server.port)
    front.start()
    try:
        yield front
    finally:
        front.stop()


def proxied_uri(proxy: Proxy, bucket: str, prefix: str) -> str:
    """A ``--storage`` URI of ``bucket/prefix`` reached through the proxy."""
    return f"s3://{bucket}/{prefix}?endpoint_override={proxy.endpoint}"
