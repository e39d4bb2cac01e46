"""Bulk API 2.0 query jobs (CSV results, Sforce-Locator): first syncs of large objects, and
every sync of an object too wide for a REST query's URI (hundreds of fields).

A job reads `SystemModstamp <= until`, after the keyset cursor on an incremental (as queryAll, so
deleted rows come too), without ORDER BY (Salesforce chunks it by primary key; an ORDER BY would
disable that). Its rows come unordered, so the keyset cursor cannot move while they arrive: each
page instead keeps the cursor the job started from and adds the job id and the locator of the
next result page, so a crash resumes at that page of the same job (jobs live for days). The last
page stores the keyset cursor `(until, -)`: everything up to `until` is in, and the next run
continues from there. A job read to its end is deleted (`DELETE jobs/query/{id}`), as
well-behaved clients do; the engine reads ahead of its commits, so a run stopped after that
point runs the same job again next time (the same bounds: nothing lost, a job's calls spent). A
result page is handed on in parts of `page_rows` rows (REST's 2,000), so a
large `maxRecords` saves calls without holding bigger pages in memory; each part but the result
page's last carries the cursor of that same result page, which a crash reads again (upserts,
never duplicates).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from functools import partial
from typing import Any

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.paging import Rows, Scope, build_query, keyset_filter
from kpisync.cursor import Cursor
from kpisync.errors import ConnectorError, RejectedError
from kpisync.prefetch import chained

log = logging.getLogger(__name__)
JOB, LOCATOR, UNTIL = "bulk_job", "bulk_locator", "bulk_until"
NUMERIC = frozenset({"double", "currency", "percent", "int"})


def _number(text: str) -> Decimal:
    return Decimal(text)


def _boolean(text: str) -> bool:
    return text.lower() == "true"


def typed_rows(text: str, kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """CSV rows with the types REST JSON would carry: null, bool, Decimal, text.

    The converters are chosen once per column, not once per value."""
    lines = csv.reader(io.StringIO(text))
    header = next(lines, None)
    if header is None:
        return []
    converters: list[Callable[[str], Any] | None] = [
        _boolean
        if kinds.get(name) == "boolean"
        else _number
        if kinds.get(name) in NUMERIC
        else None
        for name in header
    ]
    typed = [(index, convert) for index, convert in enumerate(converters) if convert is not None]
    rows = []
    for values in lines:
        row: list[Any] = [value if value != "" else None for value in values]
        for index, convert in typed:
            if row[index] is not None:
                row[index] = convert(row[index])
        rows.append(dict(zip(header, row, strict=True)))  # a short row is a corrupt result
    return rows


class BulkReader:
    def __init__(
        self,
        client: SalesforceClient,
        page_records: int,
        poll_seconds: float,
        page_rows: int = 2000,
        max_polls: int = 10_000,
    ) -> None:
        self.client = client
        self.page_records = page_records  # maxRecords: rows per result call
        self.page_rows = page_rows  # rows per page handed on
        self.poll_seconds = poll_seconds
        self.max_polls = max_polls

    def read(
        self, scope: Scope, kinds: Mapping[str, str], cursor: Cursor, until: str
    ) -> Iterator[tuple[Rows, Cursor]]:
        job, locator = cursor.get(JOB), cursor.get(LOCATOR) or ""
        since = cursor.with_state(**{JOB: None, LOCATOR: None, UNTIL: None})  # the keyset
        resumed = job is not None
        if job is None:
            job = self.start(scope, until, since)
        else:
            until = cursor.get(UNTIL) or until

        def at(next_locator: str) -> Cursor:
            return since.with_state(**{JOB: job, LOCATOR: next_locator, UNTIL: until})

        while True:
            try:
                for text, following in self.result_pages(job, locator):
                    rows = typed_rows(text, kinds)
                    size = self.page_rows
                    parts = [rows[i : i + size] for i in range(0, len(rows), size)]
                    for part in parts[:-1]:
                        yield part, at(locator)
                    last = parts[-1] if parts else []
                    if not following:
                        yield last, Cursor(value=until)
                        self.delete(
                            job
                        )  # read whole; a stop before its rows commit reruns it, as if expired
                        return
                    yield last, at(following)
                    locator = following
            except RejectedError:
                if not (locator or resumed):
                    raise
                job, locator, resumed = self.start(scope, until, since), "", False  # expired

    def typed(self, scope: Scope, kinds: Mapping[str, str]) -> Iterator[Rows]:
        """Every row of a one-off job, typed as REST would give them (an object read whole)."""
        job = self.run(scope.sobject, build_query(scope.sobject, scope.fields, []))
        for text, _following in self.result_pages(job, ""):
            yield typed_rows(text, kinds)
        self.delete(job)

    def rows(
        self, sobject: str, fields: tuple[str, ...], filters: list[str | None]
    ) -> Iterator[list[dict[str, str]]]:
        """A one-off job's rows, values as CSV strings ("" for null); no resume: for the
        history indexes read when a stream starts."""
        job = self.run(sobject, build_query(sobject, fields, filters))
        for text, _following in self.result_pages(job, ""):
            yield list(csv.DictReader(io.StringIO(text)))
        self.delete(job)

    def result_pages(self, job: str, locator: str) -> Iterator[tuple[str, str]]:
        """(CSV text, next locator or "") of each result page from `locator` on; the next page
        is fetched while the caller parses one."""
        return chained(
            partial(self.results, job, locator),
            lambda page: partial(self.results, job, page[1]) if page[1] else None,
        )

    def start(self, scope: Scope, until: str, since: Cursor) -> str:
        """A job of the rows modified after `since` (every row on a first sync) up to `until`;
        an incremental's job also returns deleted rows, as REST's queryAll does."""
        soql = build_query(
            scope.sobject, scope.fields, [keyset_filter(since), f"SystemModstamp <= {until}"]
        )
        return self.run(
            scope.sobject, soql, operation="query" if since.value is None else "queryAll"
        )

    def run(self, sobject: str, soql: str, *, operation: str = "query") -> str:
        """Create a query job and poll it until it completes; its id."""
        created = self.client.restful(
            "POST jobs/query",
            "jobs/query",
            method="POST",
            json={
                "operation": operation,
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        )
        job = str(created["id"])
        for _ in range(self.max_polls):
            info = self.client.restful("GET jobs/query/{id}", f"jobs/query/{job}")
            state = info.get("state")
            if state == "JobComplete":
                return job
            if state in ("Failed", "Aborted"):
                raise ConnectorError(
                    f"Bulk API query job {job} on {sobject} ended "
                    f"{state}: {info.get('errorMessage', 'no message')}"
                )
            self.client.wait(self.poll_seconds)
        raise ConnectorError(
            f"Bulk API query job {job} on {sobject} did not finish",
            hint="raise bulk_above_records to read this object by REST",
        )

    def delete(self, job: str) -> None:
        """Delete a job whose results have all been read, as well-behaved clients do (its
        results would otherwise stay stored at Salesforce for days). A job left behind costs
        nothing but that, so a refusal is logged, not raised: the rows are already in."""
        try:
            self.client.restful("DELETE jobs/query/{id}", f"jobs/query/{job}", method="DELETE")
        except ConnectorError as error:
            log.warning(
                "Bulk API query job %s was read but not deleted (Salesforce removes it "
                "after 7 days): %s",
                job,
                error,
            )

    def results(self, job: str, locator: str) -> tuple[str, str]:
        params: dict[str, Any] = {"maxRecords": self.page_records}
        if locator:
            params["locator"] = locator
        response = self.client.call(
            "GET jobs/query/{id}/results",
            lambda sf: self.client.get_raw(sf, f"jobs/query/{job}/results", params, "text/csv"),
        )
        following = response.headers.get("Sforce-Locator") or "null"
        text = response.content.decode("utf-8").replace("\x00", "")
        return text, "" if following == "null" else following
