"""A TCP proxy between the journal and PostgreSQL that can lose a commit's acknowledgement:
armed with a byte pattern, it forwards the next client message containing it to the server and
then closes both sides before the server's answer comes back."""

from __future__ import annotations

import contextlib
import socket
import threading


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._armed: bytes | None = None
        self._lock = threading.Lock()
        self.dropped = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, pattern: bytes) -> None:
        with self._lock:
            self._armed = pattern
            self.dropped.clear()

    def url(self, url: str, pg_port: int) -> str:
        return url.replace(f"127.0.0.1:{pg_port}", f"127.0.0.1:{self.port}")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if to_server:
                    with self._lock:
                        hit = self._armed is not None and self._armed in data
                        if hit:
                            self._armed = None
                    if hit:
                        # Set before the drop: the client's retry may finish before this
                        # thread runs again.
                        self.dropped.set()
                        # The message reached the server; its answer never reaches the client.
                        for sock in (source, sink):
                            with contextlib.suppress(OSError):
                                sock.shutdown(socket.SHUT_RDWR)
                            sock.close()
                        return
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
