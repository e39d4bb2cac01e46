"""The one webhook sender, for the KPI alerts and the operations alerts alike.

A notice is POSTed as JSON and counts as delivered only on a 2xx answer. A failure (refused,
timed out, any other status) is logged once as a warning with every known secret masked (chat
hooks embed their key in the URL) and returned as False: the caller keeps the notice and sends it
again at its next review. Nothing here retries or sleeps, so a dead receiver never holds a run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from kpisync.secrets import mask


def post_json(
    url: str | None,
    payload: Mapping[str, Any],
    *,
    timeout_seconds: float,
    what: str,
    retried: str,
    log: logging.Logger,
) -> bool:
    """POST `payload`; True when accepted, or when no URL is configured (nothing to deliver).
    `what` and `retried` name the hook and when it is tried again, in the warning."""
    if not url:
        return True
    try:
        response = httpx.post(url, json=dict(payload), timeout=timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as error:
        log.warning("%s failed (%s): %s", what, retried, mask(f"{type(error).__name__}: {error}"))
        return False
    return True
