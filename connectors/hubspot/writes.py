"""Writing managed properties back: batch/update, 100 records a call, a result per record.

Each result carries the record's properties as HubSpot holds them after the write; they are handed
back (`WriteResult.held`) for write-back to compare by meaning (`CODEC`): HubSpot answers numbers
as it stores them ("42.0" may come back as "42"), dates as ISO days or epoch milliseconds,
booleans as "true"/"false", and an unset property as "" or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.hubspot.client import HubSpotClient
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError
from kpisync.fieldcodec import ValueCodec

BATCH_UPDATE_MAX = 100


class HubSpotCodec(ValueCodec):
    """Canonical text on the wire; "" clears a property (HubSpot can hold "unknown" for every
    type, a checkbox included)."""

    name = "HubSpot"

    def wire(self, kind: str, text: str | None) -> str:
        return "" if text is None else text


CODEC = HubSpotCodec()


def write_batches(
    client: HubSpotClient, object_type: str, updates: Sequence[FieldUpdate]
) -> list[WriteResult]:
    results: list[WriteResult] = []
    for start in range(0, len(updates), BATCH_UPDATE_MAX):
        results.extend(write_batch(client, object_type, updates[start : start + BATCH_UPDATE_MAX]))
    return results


def write_batch(
    client: HubSpotClient, object_type: str, batch: Sequence[FieldUpdate]
) -> list[WriteResult]:
    body = {
        "inputs": [
            {"id": u.external_id, "properties": {k: ("" if v is None else v) for k, v in u.values}}
            for u in batch
        ]
    }
    try:
        response = client.call(
            f"POST /crm/v3/objects/{object_type}/batch/update",
            client.batch.update_with_http_info,
            object_type,
            body,
        )
    except RejectedError as error:  # the whole batch refused, e.g. VALIDATION_ERROR
        return [WriteResult(u.external_id, ok=False, error=error.message) for u in batch]
    return results_of(batch, response)


def held_of(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Record id -> its properties as the answer gives them."""
    return {
        str(r.get("id")): dict(r.get("properties") or {})
        for r in response.get("results", [])
        if isinstance(r, dict)
    }


def results_of(batch: Sequence[FieldUpdate], response: dict[str, Any]) -> list[WriteResult]:
    failed: dict[str, tuple[str, bool]] = {}
    for error in response.get("errors", []):
        category = str(error.get("category", "ERROR"))
        message = f"{category}: {error.get('message', '')}"
        for rid in (error.get("context") or {}).get("ids", []):
            failed[str(rid)] = (message, category == "OBJECT_NOT_FOUND")
    held = held_of(response)
    results = []
    for update in batch:
        if update.external_id in failed:
            message, missing = failed[update.external_id]
            results.append(
                WriteResult(update.external_id, ok=False, error=message, not_found=missing)
            )
        elif update.external_id not in held:
            results.append(
                WriteResult(
                    update.external_id,
                    ok=False,
                    error="HubSpot's answer has no result for this record",
                )
            )
        else:
            props = held[update.external_id]
            results.append(
                WriteResult(
                    update.external_id,
                    ok=True,
                    held={name: props.get(name) for name, _ in update.values},
                )
            )
    return results
