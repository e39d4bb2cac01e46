"""Writing managed fields back through `revise` (a partial update): one record per call.

Vtiger has no batch write, so K records cost K calls whatever the number of fields. Only custom
fields (cf_NNN) are written: kpisync never changes a CRM's own fields. `revise` returns the whole
record; the written fields' values in it are handed back (`WriteResult.held`) for write-back to
compare with what it meant (connectors.vtiger.values.VtigerCodec), because Vtiger rounds numbers
by the writing user's currency preference, stores 0 for a checkbox sent anything but 1/on/true,
and ignores unknown keys silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from connectors.vtiger.client import VtigerClient, VtigerFailure
from connectors.vtiger.values import CODEC
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError

__all__ = ["CODEC", "write_records"]

NOT_FOUND_CODES = frozenset({"ACCESS_DENIED", "RECORD_NOT_FOUND", "INVALID_ID_ATTRIBUTE"})


def write_records(client: VtigerClient, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
    return [write_record(client, update) for update in updates]


def write_record(client: VtigerClient, update: FieldUpdate) -> WriteResult:
    unmanaged = [name for name, _ in update.values if not name.startswith("cf_")]
    if unmanaged:
        return WriteResult(
            update.external_id,
            ok=False,
            error=f"not a managed (custom) field: {', '.join(unmanaged)}",
        )
    element = {
        "id": update.external_id,
        **{k: ("" if val is None else val) for k, val in update.values},
    }
    try:
        result = client.call("revise", element=json.dumps(element, ensure_ascii=False))
    except VtigerFailure as error:
        missing = error.code in NOT_FOUND_CODES and "not found" in error.message.lower()
        return WriteResult(update.external_id, ok=False, error=error.message, not_found=missing)
    except RejectedError as error:
        return WriteResult(update.external_id, ok=False, error=error.message)
    answer = result if isinstance(result, dict) else {}
    absent = [name for name, _ in update.values if name not in answer]
    if absent:
        return WriteResult(
            update.external_id,
            ok=False,
            error=f"Vtiger ignored unknown field(s) {', '.join(absent)}",
        )
    return WriteResult(
        update.external_id, ok=True, held={name: answer[name] for name, _ in update.values}
    )
