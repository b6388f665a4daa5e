"""A TCP proxy on loopback, to cut the network between symgrid and a storage server whose data
stays intact.

``python tests/tcpproxy.py LISTEN_PORT TARGET_PORT`` forwards 127.0.0.1:LISTEN_PORT to
127.0.0.1:TARGET_PORT. :class:`Proxy` runs it as a process of its own: ``cut()`` stops it (new
connections are refused, open ones reset), ``restore()`` starts it again on the same port, and
``stall()`` / ``resume()`` freeze it with SIGSTOP / SIGCONT (connections hang: a network that
swallows packets). Stopped by its pid, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
START_TIMEOUT_S = 20


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.close()


async def serve(listen: int, target: int) -> None:
    async def forward(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(HOST, target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = await asyncio.start_server(forward, HOST, listen, reuse_address=True)
    async with server:
        await server.serve_forever()


class Proxy:
    """127.0.0.1:``listen`` forwarded to 127.0.0.1:``target``, in a process of its own."""

    def __init__(self, listen: int, target: int):
        self.listen, self.target = listen, target
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.listen}"

    def start(self) -> None:
        cmd = [sys.executable, __file__, str(self.listen), str(self.target)]
        self.proc = subprocess.Popen(cmd)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.accepting():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the proxy on port {self.listen} did not start")
            time.sleep(0.05)

    def accepting(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.listen), 0.5):
            return True
        return False

    def cut(self) -> None:
        """Stop forwarding: connections to the port are refused until :meth:`restore`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restore(self) -> None:
        self.cut()
        self.start()

    def stall(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
        self.cut()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))
