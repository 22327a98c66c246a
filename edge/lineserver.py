"""A small TCP line server for device controllers on the local network (gates, plates).

Every connection sends UTF-8 lines; ``take(line)`` turns each into an answer line (or None for
no answer). Lines longer than ``max_line_bytes`` are refused and the connection closed. Any
number of controllers may be connected at once; an idle one is dropped after ``idle_s``.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable

Take = Callable[[bytes], bytes | None]


class LineServer:
    def __init__(
        self,
        take: Take,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_line_bytes: int = 4096,
        idle_s: float = 300.0,
        name: str = "line-server",
    ):
        self.too_long = 0
        self.name = name
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = idle_s

            def handle(self) -> None:
                while True:
                    try:
                        line = self.rfile.readline(max_line_bytes + 1)
                    except (OSError, TimeoutError):
                        return
                    if not line:
                        return
                    if len(line) > max_line_bytes:
                        owner.too_long += 1
                        self._reply(f"error line longer than {max_line_bytes} bytes\n".encode())
                        return
                    if not line.strip():
                        continue
                    answer = take(line)
                    if answer is not None:
                        self._reply(answer)

            def _reply(self, text: bytes) -> None:
                try:
                    self.wfile.write(text)
                    self.wfile.flush()
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> LineServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
