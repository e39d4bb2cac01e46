"""Loopback HTTP server shared by the vendor emulators (HubSpot, Salesforce, Vtiger).

An `EmulatorServer` runs `http.server.ThreadingHTTPServer` on 127.0.0.1 (port 0, optional TLS) in
a daemon thread. A vendor emulator subclasses it, registers `(method, regex) -> handler` routes
with `add_route`, and may override `handle` (auth, rate limits, headers) and `fault_response`
(its own error bodies). Every request is counted per route template (`calls`) and in total, then
passes through the fault `Knobs`: latency, 429s, 5xx, hangs, dropped sockets and faults that
never clear. Faults are drawn from `random.Random(knobs.fault_seed)` so runs repeat.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

JsonValue = Any  # a decoded JSON document
NUMERIC_SEGMENT = re.compile(r"/\d+(?=/|$)")


@dataclass
class Knobs:
    """Fault and latency settings; safe to change while the server runs."""

    latency_seconds: float = 0.0
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    hang_seconds: float = 5.0
    fault_seed: int = 0
    fail_always_after_calls: int | None = None


@dataclass
class Request:
    """One parsed HTTP request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route regex
    route_key: str = ""

    def json(self) -> JsonValue:
        """The body decoded as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, str]:
        """The body decoded as application/x-www-form-urlencoded (first value of each field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def arg_list(self, name: str) -> list[str]:
        """All values of a repeated or comma-separated query parameter."""
        return [part for value in self.query.get(name, []) for part in value.split(",") if part]


@dataclass
class Response:
    """What a handler returns; `body` is raw bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_response(
    status: int, payload: JsonValue, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response with the right content type."""
    merged = {"Content-Type": "application/json;charset=utf-8", **(headers or {})}
    return Response(status, merged, json.dumps(payload, ensure_ascii=False).encode("utf-8"))


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A registered endpoint: method, compiled path regex, counter key and handler."""

    method: str
    pattern: re.Pattern[str]
    key: str
    handler: Handler


class DropConnection(Exception):
    """Raised inside request handling to close the socket without any response."""


def template_key(method: str, regex: str) -> str:
    """'POST /crm/v3/objects/(?P<type>[^/]+)/search' -> 'POST /crm/v3/objects/{type}/search'."""
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", regex)
    return f"{method} {text.lstrip('^').rstrip('$').replace('/?', '/')}"


class EmulatorServer:
    """Base of every vendor emulator: routing, call counting, faults and the server thread."""

    def __init__(
        self,
        knobs: Knobs | None = None,
        ssl_context: ssl.SSLContext | None = None,
        url_host: str = "127.0.0.1",
    ) -> None:
        self.knobs = knobs or Knobs()
        self.ssl_context = ssl_context
        self.url_host = url_host
        self.calls: Counter[str] = Counter()
        self.calls_by_path: Counter[str] = Counter()
        self._total = 0
        self.faults_injected: Counter[str] = Counter()  # per kind, since the start
        self._routes: list[Route] = []
        self._lock = threading.Lock()
        self._fault_rng = random.Random(self.knobs.fault_seed)
        self._fault_seed = self.knobs.fault_seed
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- routing -------------------------------------------------------------------------------
    def add_route(self, method: str, regex: str, handler: Handler, key: str | None = None) -> None:
        """Register a handler for `method` and a full-path regex (anchored at both ends)."""
        compiled = re.compile(f"^{regex.lstrip('^').rstrip('$')}$")
        self._routes.append(Route(method, compiled, key or template_key(method, regex), handler))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route matching the method and path, with its captured groups."""
        for route in self._routes:
            if route.method == method:
                found = route.pattern.match(path)
                if found:
                    return route, found.groupdict()
        return None

    # --- counting ------------------------------------------------------------------------------
    @property
    def total_calls(self) -> int:
        """Every request received since the last reset, matched or not."""
        return self._total

    def reset_calls(self) -> None:
        """Zero the call counters (fault draws keep their sequence)."""
        with self._lock:
            self.calls.clear()
            self.calls_by_path.clear()
            self._total = 0

    def _count(self, key: str, path: str) -> int:
        concrete = f"{key.split(' ', 1)[0]} {NUMERIC_SEGMENT.sub('/{id}', path)}"
        with self._lock:
            self.calls[key] += 1
            self.calls_by_path[concrete] += 1
            self._total += 1
            return self._total

    # --- faults --------------------------------------------------------------------------------
    def _draw_fault(self, call_number: int) -> str | None:
        knobs = self.knobs
        limit = knobs.fail_always_after_calls
        if limit is not None and call_number > limit:
            return "5xx"
        with self._lock:
            if knobs.fault_seed != self._fault_seed:
                self._fault_seed = knobs.fault_seed
                self._fault_rng = random.Random(knobs.fault_seed)
            roll = self._fault_rng.random()
        for kind, rate in (
            ("429", knobs.rate_429),
            ("5xx", knobs.rate_5xx),
            ("timeout", knobs.rate_timeout),
            ("drop", knobs.rate_drop),
        ):
            if roll < rate:
                with self._lock:
                    self.faults_injected[kind] += 1
                return kind
            roll -= rate
        return None

    def fault_response(self, kind: str) -> Response:
        """The response for an injected '429' or '5xx'; vendors override for their own bodies."""
        if kind == "429":
            return json_response(429, {"error": "rate limited (injected)"}, {"Retry-After": "1"})
        return json_response(503, {"error": "service unavailable (injected)"})

    # --- dispatch ------------------------------------------------------------------------------
    def handle(self, request: Request, handler: Handler) -> Response:
        """Run the route handler; vendors override to add auth, rate limits and headers."""
        return handler(request)

    def not_found(self, request: Request) -> Response:
        """The response for a path no route matches."""
        return json_response(404, {"error": f"no route for {request.method} {request.path}"})

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Count, apply latency and faults, then route one request."""
        parts = urlsplit(target)
        found = self.match(method, parts.path)
        key = found[0].key if found else f"{method} <unmatched>"
        call_number = self._count(key, parts.path)
        if self.knobs.latency_seconds > 0:
            time.sleep(self.knobs.latency_seconds)
        fault = self._draw_fault(call_number)
        if fault in ("timeout", "drop"):
            if fault == "timeout":
                time.sleep(self.knobs.hang_seconds)
            raise DropConnection(fault)
        if fault is not None:
            return self.fault_response(fault)
        request = Request(
            method,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            headers,
            body,
            found[1] if found else {},
            key,
        )
        if found is None:
            return self.not_found(request)
        return self.handle(request, found[0].handler)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        """Bind 127.0.0.1 on `port` (0: a free one), serve in a daemon thread, return the base
        URL. A port in use raises OSError."""
        if self._server is not None:
            return self.base_url
        server = _Server(("127.0.0.1", port), _make_handler(self))
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-http",
            daemon=True,
        )
        self._thread.start()
        scheme = "https" if self.ssl_context is not None else "http"
        self.base_url = f"{scheme}://{self.url_host}:{server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


def _make_handler(owner: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    """A request-handler class bound to one emulator."""

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # replies leave at once: no 40 ms delayed-ACK stall per call

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = owner.dispatch(self.command, self.path, headers, body)
            except DropConnection:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.body and self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return _Handler
