"""Serving with uvicorn: one process, or `--workers N` that share the connections evenly.

uvicorn's `--workers` binds one listening socket and hands it to every worker; the kernel
then gives each new connection to whichever worker is first to accept, and under load one
worker took all 32 of a load balancer's keep-alive connections and did all the work while
the other idled (README, Scaling out). Here each worker listens on a socket of its own, all
bound to the one address with SO_REUSEPORT, and the kernel spreads new connections across
the sockets by a hash of the client's address and port: about evenly, and a connection stays
with the worker that took it. Everything else is uvicorn's supervisor as it is (a dead
worker is replaced, SIGHUP restarts them one by one, SIGTERM stops them gracefully).
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess

log = logging.getLogger("uvicorn.error")


def run(app: str, *, workers: int, **options: Any) -> None:
    """`uvicorn.run(app, factory=True, **options)`, with `workers` processes sharing the
    connections evenly (above) when there is more than one and the system can."""
    # Linux balances SO_REUSEPORT sockets; elsewhere (macOS, BSD) it would not help.
    if workers <= 1 or sys.platform != "linux":
        uvicorn.run(app, factory=True, workers=workers, **options)
        return
    config = Config(app, factory=True, workers=workers, **options)
    try:
        ensure_address_free(config.host, config.port)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", config.host, config.port, error)
        sys.exit(STARTUP_FAILURE)
    address = f"[{config.host}]" if ":" in config.host else config.host
    log.info("Uvicorn running on http://%s:%d with %d workers, each on its own socket "
             "(SO_REUSEPORT)", address, config.port, workers)
    BalancedWorkers(config).run()


def ensure_address_free(host: str, port: int) -> None:
    """Raise OSError when anything listens on host:port already. SO_REUSEPORT would let us
    share the port with another process of this user that set it too (a second instance
    started by mistake); a bind without it fails on any socket bound there."""
    with socket.socket(_family(host)) as probe:
        # Unlike SO_REUSEPORT, SO_REUSEADDR only passes over closed connections of an
        # earlier run (TIME_WAIT), never over a socket listening there.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port that other SO_REUSEPORT sockets of ours share. It is
    not listening yet: the worker listens once its app has started (uvicorn's server does),
    so no connection waits on a worker that is still starting, or that fails to."""
    sock = socket.socket(_family(host))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class BalancedWorkers(Multiprocess):
    """uvicorn's supervisor, giving every worker it starts a socket of its own to listen on.

    The supervisor hands `self.sockets` to each worker it creates (at start, to replace a
    dead one, on SIGHUP and SIGTTIN), so each read of it opens a new socket. The worker
    process holds that socket from its start; the supervisor closes its own copy on its next
    round (every 0.5 s), so a worker that exits takes its socket with it: the kernel stops
    routing connections there rather than queueing them where no one accepts. The ones
    already queued on it, not yet accepted, are reset (README, Scaling out): a worker that is
    stopped (SIGHUP, SIGTTOU, SIGTERM) or dies leaves them no one else to take them, where
    one shared socket did.
    """

    def __init__(self, config: Config) -> None:
        self._handed_over: list[socket.socket] = []
        super().__init__(config, sockets=[])

    @property  # type: ignore[override]
    def sockets(self) -> list[socket.socket]:
        sock = reuse_port_socket(self.config.host, self.config.port)
        self._handed_over.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, value: list[socket.socket]) -> None:
        """Multiprocess's own assignment of the shared socket list, which this replaces."""

    def keep_subprocess_alive(self) -> None:
        # Every worker created since the last round has been started (spawned with its
        # socket's descriptor): the supervisor's copies are no longer needed.
        self.close_handed_over()
        super().keep_subprocess_alive()

    def close_handed_over(self) -> None:
        for sock in self._handed_over:
            sock.close()
        self._handed_over.clear()

    def run(self) -> None:
        try:
            super().run()
        except BaseException:
            # A socket or process that could not be made (out of descriptors, say) ends
            # the supervisor: stop the workers it has, or exiting would wait on them forever.
            log.exception("the worker supervisor failed; stopping the workers")
            self.terminate_all()
            self.join_all()
            raise
        finally:
            self.close_handed_over()
