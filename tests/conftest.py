"""Shared fixtures: the loopback S3 server, a proxy in front of it, a fresh bucket
(``tests/storagefixtures.py``)."""

from storagefixtures import aws_env, bucket, proxy, s3_server  # noqa: F401
