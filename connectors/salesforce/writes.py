"""Writing managed fields back: sObject Collections update, 200 records a call, allOrNone false.

A well-formed call answers 200 with one result per record, in input order; per-record errors
carry `statusCode`. ENTITY_IS_DELETED and NOT_FOUND (and an id Salesforce no longer knows)
mean the record is gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.salesforce.client import SalesforceClient
from kpisync.connector import FieldUpdate, WriteResult
from kpisync.errors import RejectedError

COLLECTION_MAX = 200
GONE = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY"})


def write_collections(client: SalesforceClient, sobject: str, updates: Sequence[FieldUpdate]
                      ) -> list[WriteResult]:
    results: list[WriteResult] = []
    for start in range(0, len(updates), COLLECTION_MAX):
        results.extend(write_chunk(client, sobject, updates[start:start + COLLECTION_MAX]))
    return results


def write_chunk(client: SalesforceClient, sobject: str, chunk: Sequence[FieldUpdate]
                ) -> list[WriteResult]:
    body = {"allOrNone": False, "records": [
        {"attributes": {"type": sobject}, "id": u.external_id, **dict(u.values)} for u in chunk]}
    try:
        response = client.call("PATCH composite/sobjects", lambda sf: sf.restful(
            "composite/sobjects", method="PATCH", json=body, timeout=client.timeout))
    except RejectedError as error:  # the whole request refused (malformed, too many records)
        return [WriteResult(u.external_id, ok=False, error=error.message) for u in chunk]
    return results_of(chunk, response or [])


def results_of(chunk: Sequence[FieldUpdate], response: Sequence[Any]) -> list[WriteResult]:
    results = []
    for update, outcome in zip(chunk, response):
        if outcome.get("success"):
            results.append(WriteResult(update.external_id, ok=True))
            continue
        problems = outcome.get("errors") or [{}]
        codes = [str(p.get("statusCode", "UNKNOWN")) for p in problems]
        message = "; ".join(f"{c}: {p.get('message', '')}" for c, p in zip(codes, problems))
        results.append(WriteResult(update.external_id, ok=False, error=message,
                                   not_found=any(c in GONE for c in codes)))
    for update in chunk[len(results):]:
        results.append(WriteResult(update.external_id, ok=False, error="no result returned"))
    return results
