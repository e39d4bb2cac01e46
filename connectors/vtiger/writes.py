"""Writing managed fields back through `revise` (a partial update): one record per call.

Vtiger has no batch write, so K records cost K calls whatever the number of fields. Only custom
fields (cf_NNN) are written: kpisync never changes a CRM's own fields. `revise` returns the whole
record; values are read back from it, because Vtiger rounds amounts by the writing user's
currency preference and ignores unknown keys silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from connectors.vtiger.client import VtigerClient, VtigerFailure
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError

NOT_FOUND_CODES = frozenset({"ACCESS_DENIED", "RECORD_NOT_FOUND", "INVALID_ID_ATTRIBUTE"})


def write_records(client: VtigerClient, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
    return [write_record(client, update) for update in updates]


def write_record(client: VtigerClient, update: FieldUpdate) -> WriteResult:
    unmanaged = [name for name, _ in update.values if not name.startswith("cf_")]
    if unmanaged:
        return WriteResult(update.external_id, ok=False,
                           error=f"not a managed (custom) field: {', '.join(unmanaged)}")
    element = {"id": update.external_id, **{k: ("" if val is None else val)
                                            for k, val in update.values}}
    try:
        result = client.call("revise", element=json.dumps(element, ensure_ascii=False))
    except VtigerFailure as error:
        missing = error.code in NOT_FOUND_CODES and "not found" in error.message.lower()
        return WriteResult(update.external_id, ok=False, error=error.message, not_found=missing)
    except RejectedError as error:
        return WriteResult(update.external_id, ok=False, error=error.message)
    absent = [name for name, _ in update.values if name not in (result or {})]
    if absent:
        return WriteResult(update.external_id, ok=False,
                           error=f"Vtiger ignored unknown field(s) {', '.join(absent)}")
    return WriteResult(update.external_id, ok=True)
