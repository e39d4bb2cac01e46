"""Writing managed fields back through `revise` (a partial update): one record per call.

Vtiger has no batch write, so K records cost K calls whatever the number of fields. Only custom
fields (cf_NNN) are written: kpisync never changes a CRM's own fields. `revise` returns the whole
record; the written fields' values in it are handed back (`WriteResult.held`) for write-back to
compare with what it meant (connectors.vtiger.values.VtigerCodec), because Vtiger rounds numbers
by the writing user's currency preference, stores 0 for a checkbox sent anything but 1/on/true,
and ignores unknown keys silently.

A missing or deleted record: stock 8.2 answers `revise` with ACCESS_DENIED "Permission to perform
the operation is denied", as for a record the user may not edit; one `query` of that id tells
them apart (VTQL lists only live records the user sees). Other versions say "not found".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from connectors.vtiger.client import VtigerClient, VtigerFailure
from connectors.vtiger.values import CODEC
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError

__all__ = ["CODEC", "write_records"]

NOT_FOUND_CODES = frozenset({"ACCESS_DENIED", "RECORD_NOT_FOUND", "INVALID_ID_ATTRIBUTE"})
WS_ID = re.compile(r"[0-9]+x[0-9]+")


def write_records(
    client: VtigerClient, module: str, updates: Sequence[FieldUpdate]
) -> list[WriteResult]:
    return [write_record(client, module, update) for update in updates]


def write_record(client: VtigerClient, module: str, update: FieldUpdate) -> WriteResult:
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
        if error.code == "ACCESS_DENIED" and not visible(client, module, update.external_id):
            return WriteResult(
                update.external_id,
                ok=False,
                not_found=True,
                error=(
                    f"{error.message}: no live {module} record {update.external_id} this user sees"
                ),
            )
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


def visible(client: VtigerClient, module: str, ws_id: str) -> bool:
    """The record is live and this user sees it (a malformed id never is)."""
    if not WS_ID.fullmatch(ws_id):
        return False
    try:
        return bool(client.call("query", query=f"SELECT id FROM {module} WHERE id = '{ws_id}';"))
    except VtigerFailure:  # cannot tell: the refusal stands as the server gave it
        return True
