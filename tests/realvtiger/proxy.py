"""An HTTP forwarder in front of the real Vtiger that counts webservice calls, and can SIGKILL a
process when a given call arrives: kills placed by progress (calls made), never by the clock."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls = 0
        self.kill_at: int | None = None  # the call number at which to kill
        self.pid: int | None = None
        self.aimed = threading.Event()
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=300, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> CountingProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()

    def kill_on_call(self, number: int) -> None:
        """Count calls from now; when the `number`-th arrives, SIGKILL the process `aim` names,
        before the call is served."""
        with self.lock:
            self.calls = 0
            self.kill_at = number
            self.pid = None
            self.aimed.clear()

    def aim(self, pid: int) -> None:
        self.pid = pid
        self.aimed.set()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.calls += 1
            if self.kill_at is not None and self.calls >= self.kill_at:
                self.kill_at = None
                self.aimed.wait(60)
                if self.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {
            k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "accept")
        }
        try:
            answer = self.http.request(
                handler.command, self.upstream + handler.path, content=body, headers=headers
            )
        except httpx.HTTPError:
            handler.send_error(502)
            return
        try:
            handler.send_response(answer.status_code)
            handler.send_header("Content-Type", answer.headers.get("content-type", "text/html"))
            handler.send_header("Content-Length", str(len(answer.content)))
            handler.end_headers()
            handler.wfile.write(answer.content)
        except OSError:
            pass  # the client was killed
