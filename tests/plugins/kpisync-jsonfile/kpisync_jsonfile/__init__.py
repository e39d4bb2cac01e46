"""A minimal third-party connector: accounts from a JSON-lines file, cursor = lines read.

It exists to prove that a separate package can add a CRM through the `kpisync.connectors`
entry-point group without touching kpisync itself, and pass kpisync's conformance suite
(its tests/ run `kpisync.conformance` on it).

The file is a log: each line `{"id": .., "name": .., "custom": {..}}` is an account as of that
line (a later line for the same id is an edit), and `{"id": .., "deleted": true}` deletes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from kpisync.connector import (
    Deleted,
    FieldInfo,
    FieldSpec,
    FieldUpdate,
    Page,
    Problem,
    ProvisionStep,
    StreamSpec,
    WriteResult,
)
from kpisync.cursor import Cursor
from kpisync.errors import (
    AuthError,
    ConfigError,
    RejectedError,
    SchemaDriftError,
    TransientError,
)
from kpisync.store.models import Account


class JsonFileConnector:
    type_name: ClassVar[str] = "jsonfile"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        if "path" not in options:
            raise ConfigError(f"sources.{name}.path: missing", hint='path = "accounts.jsonl"')
        self.name = name
        self.path = Path(options["path"])
        self.page_lines = int(options.get("page_lines", 500))

    def check(self) -> list[Problem]:
        try:
            with self.path.open("rb"):
                return []
        except OSError as error:
            return [
                Problem(
                    f"cannot read {self.path}: {error.strerror}",
                    f"set sources.{self.name}.path to a readable file",
                )
            ]

    def discover(self) -> list[FieldInfo]:
        return [FieldInfo("account", "name", "Name", "string", False, False)]

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec("accounts", ("account",), cursor_field="line number")]

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        done = int(cursor.value or 0)
        lines = self._lines()
        for start in range(done, len(lines), self.page_lines):
            chunk = lines[start : start + self.page_lines]
            items = [self._parse(line, start + offset + 1) for offset, line in enumerate(chunk)]
            yield Page(
                stream=stream,
                records=[
                    Account.row(
                        external_id=str(item["id"]),
                        name=item["name"],
                        custom=item.get("custom", {}),
                        raw=item,
                    )
                    for item in items
                    if not item.get("deleted")
                ],
                deleted=[
                    Deleted("account", str(item["id"])) for item in items if item.get("deleted")
                ],
                cursor=Cursor(value=str(start + len(chunk))),
            )

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        live: dict[str, bool] = {}
        for number, line in enumerate(self._lines(), start=1):
            item = self._parse(line, number)
            live[str(item["id"])] = not item.get("deleted")
        yield "account", [rid for rid, alive in live.items() if alive]

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        raise RejectedError(
            "the JSON file connector is read-only",
            hint="keep managed fields out of a jsonfile source's write-back",
        )

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]:
        return [ProvisionStep(spec, "manual", "read-only source") for spec in specs]

    def api_usage(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass

    def _lines(self) -> list[str]:
        """The file's lines; its failures as kpisync's errors (a missing file may be a share
        not mounted yet: worth another try; a refused one needs the admin)."""
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except PermissionError as error:
            raise AuthError(
                f"cannot read {self.path}: permission denied",
                hint="let the user running kpisync read the file",
            ) from error
        except OSError as error:
            raise TransientError(
                f"cannot reach {self.path}: {error.strerror}",
                hint=f"check sources.{self.name}.path",
            ) from error

    def _parse(self, line: str, number: int) -> dict[str, Any]:
        try:
            item = json.loads(line)
            if (
                not isinstance(item, dict)
                or "id" not in item
                or ("name" not in item and not item.get("deleted"))
            ):
                raise ValueError("no id and name")
        except ValueError as error:
            raise SchemaDriftError(
                f"{self.path} line {number} is not an account record",
                hint='each line: {"id": .., "name": ..}',
            ) from error
        return item
