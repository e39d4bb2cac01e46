"""Writing managed fields back: sObject Collections update, 200 records a call, allOrNone false.

A well-formed call answers 200 with one result per record, in input order; per-record errors
carry `statusCode`. ENTITY_IS_DELETED and NOT_FOUND (and an id Salesforce no longer knows)
mean the record is gone. The answer carries no values, so the records written are read back with
one SOQL query per call (`Id IN (...)`) and handed back (`WriteResult.held`) for write-back to
compare by meaning (`CODEC`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.salesforce.client import SalesforceClient
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError
from kpisync.fieldcodec import ValueCodec, as_bool, as_number

COLLECTION_MAX = 200
GONE = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY"})


class SalesforceCodec(ValueCodec):
    """JSON types on the wire: booleans as true/false, numbers as numbers, null clears. A checkbox
    is never null in Salesforce (null stores false), so it cannot hold "unknown": an unknown flag
    leaves the field as it is."""

    name = "Salesforce"

    def wire(self, kind: str, text: str | None) -> Any:
        if text is None:
            return None
        if kind == "bool":
            return bool(as_bool(text))
        if kind == "number":
            number = as_number(text)
            if number is not None:
                return int(number) if number == number.to_integral_value() else float(number)
        return text

    def keeps_unknown(self, kind: str) -> bool:
        return kind != "bool"

    def holds(self, kind: str, held: Any, meant: str | None) -> bool:
        if kind == "bool" and meant is None:
            return True
        return super().holds(kind, held, meant)


CODEC = SalesforceCodec()


def write_collections(
    client: SalesforceClient, sobject: str, updates: Sequence[FieldUpdate]
) -> list[WriteResult]:
    results: list[WriteResult] = []
    for start in range(0, len(updates), COLLECTION_MAX):
        results.extend(write_chunk(client, sobject, updates[start : start + COLLECTION_MAX]))
    return results


def write_chunk(
    client: SalesforceClient, sobject: str, chunk: Sequence[FieldUpdate]
) -> list[WriteResult]:
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": sobject}, "id": u.external_id, **dict(u.values)} for u in chunk
        ],
    }
    try:
        response = client.call(
            "PATCH composite/sobjects",
            lambda sf: sf.restful(
                "composite/sobjects", method="PATCH", json=body, timeout=client.timeout
            ),
        )
    except RejectedError as error:  # the whole request refused (malformed, too many records)
        return [WriteResult(u.external_id, ok=False, error=error.message) for u in chunk]
    results = results_of(chunk, response or [])
    landed = [u for u, r in zip(chunk, results, strict=True) if r.ok]
    if not landed:
        return results
    held = read_back(client, sobject, landed)
    return [
        WriteResult(r.external_id, ok=True, held=held.get(r.external_id, {})) if r.ok else r
        for r in results
    ]


def read_back(
    client: SalesforceClient, sobject: str, updates: Sequence[FieldUpdate]
) -> dict[str, dict[str, Any]]:
    """Record id -> the written fields' values as Salesforce holds them now."""
    names = sorted({name for u in updates for name, _ in u.values})
    ids = ", ".join("'" + u.external_id.replace("'", "") + "'" for u in updates)
    soql = f"SELECT Id, {', '.join(names)} FROM {sobject} WHERE Id IN ({ids})"
    response = client.call("GET query", lambda sf: sf.query(soql, timeout=client.timeout))
    held: dict[str, dict[str, Any]] = {}
    for row in (response or {}).get("records", []):
        values = {name: row.get(name) for name in names}
        held[str(row.get("Id"))] = values
        held[str(row.get("Id"))[:15]] = values  # an update may name the record by its 15-char id
    return held


def results_of(chunk: Sequence[FieldUpdate], response: Sequence[Any]) -> list[WriteResult]:
    results = []
    for update, outcome in zip(chunk, response, strict=True):  # one result per record
        if outcome.get("success"):
            results.append(WriteResult(update.external_id, ok=True))
            continue
        problems = outcome.get("errors") or [{}]
        codes = [str(p.get("statusCode", "UNKNOWN")) for p in problems]
        message = "; ".join(
            f"{c}: {p.get('message', '')}" for c, p in zip(codes, problems, strict=True)
        )
        results.append(
            WriteResult(
                update.external_id, ok=False, error=message, not_found=any(c in GONE for c in codes)
            )
        )
    for update in chunk[len(results) :]:
        results.append(WriteResult(update.external_id, ok=False, error="no result returned"))
    return results
