"""What stopped a connection, in an admin's words: the DNS name, a refused port, TLS, a timeout.

HTTP libraries wrap the operating system's error in their own classes (urllib3's MaxRetryError
around a NewConnectionError around a ConnectionRefusedError); the class an admin would see says
nothing. `network_cause` walks the chain down to the cause and names it.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator

DNS_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "temporary failure in name resolution",
    "no address associated",
    "failed to resolve",
    "name resolution",
)


def chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error behind it (cause, context, urllib3's `reason`, wrapped args)."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for behind in (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *[arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)],
        ):
            if isinstance(behind, BaseException):
                pending.append(behind)


def network_cause(error: BaseException) -> str:
    """'the host name does not resolve (DNS)', 'connection refused', 'TLS: …', 'timed out', …"""
    errors = list(chain(error))
    text = " ".join(str(e) for e in errors).lower()
    names = {type(e).__name__ for e in errors}
    if (
        any(isinstance(e, socket.gaierror) for e in errors)
        or "NameResolutionError" in names
        or any(word in text for word in DNS_WORDS)
    ):
        return "the host name does not resolve (DNS)"
    for e in errors:
        if (
            isinstance(e, ssl.SSLCertVerificationError)
            or "certificate verify failed" in str(e).lower()
        ):
            return "TLS: the server's certificate is not trusted (certificate verify failed)"
    if (
        any(isinstance(e, ssl.SSLError) for e in errors)
        or names & {"SSLError"}
        or "ssl" in text
        and "wrong version number" in text
    ):
        reason = next((str(e) for e in errors if isinstance(e, ssl.SSLError)), "handshake failed")
        return f"TLS failed: {reason}"
    if any(isinstance(e, ConnectionRefusedError) for e in errors) or "connection refused" in text:
        return "connection refused (nothing listens on that host and port)"
    if (
        any(isinstance(e, TimeoutError | socket.timeout) for e in errors)
        or "timeout" in " ".join(names).lower()
        or "timed out" in text
    ):
        return "timed out (no answer from the host)"
    if any(isinstance(e, ConnectionResetError) for e in errors) or "reset by peer" in text:
        return "the connection was reset by the server"
    unreachable = (errno.ENETUNREACH, errno.EHOSTUNREACH)
    if (
        any(isinstance(e, OSError) and e.errno in unreachable for e in errors)
        or "unreachable" in text
    ):
        return "the network or host is unreachable"
    if (
        "remote end closed" in text
        or "RemoteDisconnected" in names
        or "server disconnected" in text
    ):
        return "the server closed the connection without answering"
    return type(errors[-1]).__name__
