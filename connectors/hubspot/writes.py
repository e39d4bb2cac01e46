"""Writing managed properties back: batch/update, 100 records a call, a result per record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.hubspot.client import HubSpotClient
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError

BATCH_UPDATE_MAX = 100


def write_batches(client: HubSpotClient, object_type: str, updates: Sequence[FieldUpdate]
                  ) -> list[WriteResult]:
    results: list[WriteResult] = []
    for start in range(0, len(updates), BATCH_UPDATE_MAX):
        results.extend(write_batch(client, object_type, updates[start:start + BATCH_UPDATE_MAX]))
    return results


def write_batch(client: HubSpotClient, object_type: str, batch: Sequence[FieldUpdate]
                ) -> list[WriteResult]:
    body = {"inputs": [{"id": u.external_id, "properties": {k: ("" if v is None else v)
                                                            for k, v in u.values}} for u in batch]}
    try:
        response = client.call(f"POST /crm/v3/objects/{object_type}/batch/update",
                               client.batch.update_with_http_info, object_type, body)
    except RejectedError as error:  # the whole batch refused, e.g. VALIDATION_ERROR
        return [WriteResult(u.external_id, ok=False, error=error.message) for u in batch]
    return results_of(batch, response)


def results_of(batch: Sequence[FieldUpdate], response: dict[str, Any]) -> list[WriteResult]:
    failed: dict[str, tuple[str, bool]] = {}
    for error in response.get("errors", []):
        category = str(error.get("category", "ERROR"))
        message = f"{category}: {error.get('message', '')}"
        for rid in (error.get("context") or {}).get("ids", []):
            failed[str(rid)] = (message, category == "OBJECT_NOT_FOUND")
    results = []
    for update in batch:
        if update.external_id in failed:
            message, missing = failed[update.external_id]
            results.append(WriteResult(update.external_id, ok=False, error=message, not_found=missing))
        else:
            results.append(WriteResult(update.external_id, ok=True))
    return results
