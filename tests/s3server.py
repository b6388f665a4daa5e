"""A real S3-compatible server on loopback for the tests: moto's server mode (``moto[server]``).

The server is a separate process started with ``python -m moto.server`` on a free port and stopped
by its pid. Clients reach it the way they reach MinIO or any S3-compatible store: an endpoint
override (``s3://bucket/prefix?endpoint_override=http://127.0.0.1:PORT`` for ``pyarrow.fs`` and
so for Ray) and the standard AWS environment variables for credentials and region.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.fs as pafs

# Any key works with moto; the names are the standard ones every AWS client (and Ray's nodes) read.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "symgrid-test",
    "AWS_SECRET_ACCESS_KEY": "symgrid-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # no EC2 here: don't wait for its metadata service
}
START_TIMEOUT_S = 60


class S3Server:
    """``moto.server`` on 127.0.0.1:``port``, logging to ``log``."""

    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uri(self, bucket: str, prefix: str) -> str:
        """The ``--storage`` URI of ``bucket/prefix`` on this server."""
        return f"s3://{bucket}/{prefix}?endpoint_override={self.endpoint}"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def up(self) -> bool:
        url = f"{self.endpoint}/moto-api/"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):
            return True
        return False

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region=CREDENTIALS["AWS_DEFAULT_REGION"],
            endpoint_override=self.endpoint,
            allow_bucket_creation=True,
        )

    def create_bucket(self, bucket: str) -> None:
        self.filesystem().create_dir(bucket)

    def files(self, path: str) -> dict[str, int]:
        """Every object under ``bucket/prefix`` and its size in bytes."""
        selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
        infos = self.filesystem().get_file_info(selector)
        return {i.path: i.size for i in infos if i.type == pafs.FileType.File}

    def read(self, path: str) -> bytes:
        with self.filesystem().open_input_stream(path) as stream:
            return stream.readall()

    def stop(self) -> None:
        """Terminate the server by its pid (kill it if it does not stop within 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class AuthS3Server(S3Server):
    """A moto server that checks signatures: one IAM user may do anything, and
    :attr:`wrong_secret` is that user's key id with a secret that does not match it."""

    def __enter__(self):
        self.start()
        import boto3  # moto's own dependency

        client = {"endpoint_url": self.endpoint, "region_name": CREDENTIALS["AWS_DEFAULT_REGION"]}
        keys = {k: CREDENTIALS[v] for k, v in KEY_NAMES.items()}
        iam = boto3.client("iam", **client, **keys)
        iam.create_user(UserName="symgrid")
        iam.put_user_policy(UserName="symgrid", PolicyName="all", PolicyDocument=ALLOW_ALL)
        key = iam.create_access_key(UserName="symgrid")["AccessKey"]
        self.create_bucket("symgrid-auth")
        reset = f"{self.endpoint}/moto-api/reset-auth"
        plain = {"Content-Type": "text/plain"}  # a form body would not reach moto's handler
        urllib.request.urlopen(urllib.request.Request(reset, b"0", plain), timeout=10).close()
        # every request from here on is checked
        self.wrong_secret = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"][:-4] + "nope",
        }
        return self

    def __exit__(self, *exc):
        self.stop()


KEY_NAMES = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
}
ALLOW_ALL = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
)
