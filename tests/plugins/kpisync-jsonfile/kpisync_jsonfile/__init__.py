"""A minimal third-party connector: accounts from a JSON-lines file, cursor = line number.

It exists to prove that a separate package can add a CRM through the `kpisync.connectors`
entry-point group without touching kpisync itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from kpisync.connector import (
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
from kpisync.errors import ConfigError, RejectedError
from kpisync.store.models import Account


class JsonFileConnector:
    type_name: ClassVar[str] = "jsonfile"

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        if "path" not in options:
            raise ConfigError(f"sources.{name}.path: missing", hint='path = "accounts.jsonl"')
        self.path = Path(options["path"])

    def check(self) -> list[Problem]:
        return [] if self.path.exists() else [Problem(f"{self.path} not found", "fix path")]

    def discover(self) -> list[FieldInfo]:
        return [FieldInfo("account", "name", "Name", "string", False, False)]

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec("accounts", ("account",), cursor_field="line number")]

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        done = int(cursor.value or 0)
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[done:], start=done + 1):
            item = json.loads(line)
            row = Account.row(external_id=str(item["id"]), name=item["name"],
                              custom=item.get("custom", {}), raw=item)
            yield Page(stream=stream, records=[row], cursor=Cursor(value=str(number)))

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        yield "account", [str(json.loads(line)["id"]) for line in lines]

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        raise RejectedError("the JSON file connector is read-only")

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]:
        return [ProvisionStep(spec, "manual", "read-only source") for spec in specs]

    def api_usage(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass
