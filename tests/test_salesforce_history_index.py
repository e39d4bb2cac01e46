"""The on-disk history index gives each opportunity exactly its own entries, oldest first."""

from __future__ import annotations

from connectors.salesforce.history import owner_entry, stage_entry
from connectors.salesforce.historyindex import HistoryIndex


def test_entries_come_back_per_opportunity_oldest_first_across_pages_and_lookups() -> None:
    # 2,000 opportunities with three stage rows each, written newest first over four pages.
    rows = [
        {
            "Id": f"008{n:05d}{k}",
            "OpportunityId": f"006{n:05d}",
            "StageName": f"S{k}",
            "CreatedDate": f"2024-0{k + 1}-01T00:00:00.000+0000",
        }
        for n in range(2000)
        for k in (2, 1, 0)
    ]
    rows.append(
        {
            "Id": "008x",
            "OpportunityId": "00600001",
            "StageName": "",
            "CreatedDate": "2024-09-01T00:00:00.000+0000",
        }
    )  # no stage: not an entry
    index = HistoryIndex.of([rows[i : i + 1600] for i in range(0, len(rows), 1600)], stage_entry)
    try:
        asked = [f"006{n:05d}" for n in range(0, 2000, 2)] + ["006unknown"]  # over one lookup
        found = index.entries(asked)
        assert set(found) == set(asked[:-1])
        assert found["00600004"] == [
            (f"2024-0{k + 1}-01T00:00:00.000+0000", f"00800004{k}", f"S{k}") for k in (0, 1, 2)
        ]
        assert sum(len(entries) for entries in found.values()) == 3000
    finally:
        index.close()


def test_owner_entries_keep_a_missing_old_owner_as_none() -> None:
    rows = [
        {
            "Id": "017b",
            "OpportunityId": "006A",
            "OldValue": "",
            "NewValue": "005B",
            "CreatedDate": "2024-02-01T00:00:00.000+0000",
        },
        {
            "Id": "017a",
            "OpportunityId": "006A",
            "OldValue": "005A",
            "NewValue": "005B",
            "CreatedDate": "2024-01-01T00:00:00.000+0000",
        },
        {
            "Id": "017n",
            "OpportunityId": "006A",
            "OldValue": "Ann",
            "NewValue": "Bob",
            "CreatedDate": "2024-01-01T00:00:00.000+0000",
        },
    ]  # the names row of a change
    index = HistoryIndex.of([rows], owner_entry)
    try:
        assert index.entries(["006A"]) == {
            "006A": [
                ("2024-01-01T00:00:00.000+0000", "017a", "005A"),
                ("2024-02-01T00:00:00.000+0000", "017b", None),
            ]
        }
    finally:
        index.close()
