"""Test-only guard: record and refuse every network connection of this Python process.

The demo test puts this folder on PYTHONPATH, so Snakemake and every job it starts import it at
start-up. Loopback and Unix sockets stay allowed (Snakemake and multiprocessing use them).
"""

import os
import socket

_LOG = os.environ.get("WORKFLOW_TEST_NETWORK_LOG")

if _LOG:
    _LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", None, ""}

    def _record(what):
        with open(_LOG, "a") as handle:
            handle.write(f"{os.getpid()} {what}\n")
        raise OSError(f"network access attempted in an offline test: {what}")

    _connect, _connect_ex, _getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def _is_local(address):
        return (
            not isinstance(address, tuple)
            or address[0] in _LOCAL
            or str(address[0]).startswith("127.")
        )

    def connect(self, address):
        if not _is_local(address):
            _record(f"connect {address!r}")
        return _connect(self, address)

    def connect_ex(self, address):
        if not _is_local(address):
            _record(f"connect_ex {address!r}")
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL and not str(host).startswith("127."):
            _record(f"getaddrinfo {host!r}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
        connect,
        connect_ex,
        getaddrinfo,
    )
