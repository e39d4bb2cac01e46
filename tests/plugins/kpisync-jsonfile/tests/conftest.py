"""The JSON-lines source the conformance suite runs on: a file this subject writes and reads."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kpisync_jsonfile import JsonFileConnector

from kpisync.conformance import ConformanceSubject, ErrorCase, Truth
from kpisync.connector import Connector
from kpisync.errors import SchemaDriftError, TransientError

TIERS = ("gold", "silver", "bronze")


class JsonFileSubject(ConformanceSubject):
    source = "files"

    def __init__(self, folder: Path, accounts: int = 30) -> None:
        self.folder = folder
        self.path = folder / "accounts.jsonl"
        self.accounts: dict[str, dict[str, Any]] = {}
        self.path.write_text("", encoding="utf-8")
        self._append(
            [
                {"id": n, "name": f"Account {n} Żółć", "custom": {"tier": TIERS[n % 3]}}
                for n in range(1, accounts + 1)
            ]
        )

    def connector(self, path: Path | None = None) -> Connector:
        return JsonFileConnector(self.source, {"path": str(path or self.path), "page_lines": 4})

    def edit(self, seed: int) -> set[tuple[str, str]]:
        rng = random.Random(seed)
        ids = rng.sample(sorted(self.accounts), 3)
        self._append([{**self.accounts[rid], "name": f"Renamed {seed}-{rid}"} for rid in ids])
        return {("account", rid) for rid in ids}

    def delete(self) -> tuple[str, str]:
        rid = sorted(self.accounts)[1]
        self._append([{"id": int(rid), "deleted": True}])
        return "account", rid

    def truth(self) -> Truth:
        return {
            "account": {
                rid: {"name": item["name"], "custom": item["custom"]}
                for rid, item in self.accounts.items()
            }
        }

    def error_cases(self) -> Sequence[ErrorCase]:
        return [
            ErrorCase(
                "the file is gone",
                TransientError,
                lambda: self.connector(self.folder / "absent.jsonl"),
            ),
            ErrorCase(
                "a line that is no record",
                SchemaDriftError,
                self._broken_copy,
                found_by_check=False,
            ),
        ]

    def _broken_copy(self) -> Connector:
        copy = self.folder / "broken.jsonl"
        shutil.copyfile(self.path, copy)
        with copy.open("a", encoding="utf-8") as out:
            out.write("{not json\n")
        return self.connector(copy)

    def _append(self, items: list[dict[str, Any]]) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            for item in items:
                out.write(json.dumps(item, ensure_ascii=False) + "\n")
                if item.get("deleted"):
                    self.accounts.pop(str(item["id"]))
                else:
                    self.accounts[str(item["id"])] = item


@pytest.fixture
def conformance_subject(tmp_path: Path) -> JsonFileSubject:
    return JsonFileSubject(tmp_path)
