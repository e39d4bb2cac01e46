"""Write-back cycles on a real, stock Vtiger 8.2: sync then write-back, repeated with nothing
changed in the CRM. Prints per cycle the run's status, values written and failed, conflicts and
the write-back's API calls. A write-back that says only what is true writes in cycle 1 and makes
no call after it.

    export VT_HOME=/tmp/kpisync-vtiger-wb VT_PORT=8089 VT_DB_PORT=3319
    python benchmarks/writeback_cycles.py [--cycles 3]

It resets the server (bringup.sh reset), seeds tests/realvtiger's small org, adds the managed
fields with the layout editor's code and imports the org's NPS answers as a survey export.
It uses only APIs that predate the value codecs, so it also measures older commits.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

from kpisync.config import parse_settings
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from metrics.survey_import import import_surveys
from tests.realvtiger.conftest import small_org
from tests.realvtiger.seed import seed_org
from tests.realvtiger.server import RealVtiger, find_bringup
from writeback.provision import LABEL_PREFIX
from writeback.runs import run_writeback
from writeback.scores import SCORES

SOURCE, KEY_ENV = "vt", "KPISYNC_BENCH_VTIGER_KEY"
MODULES = {"account": "Accounts", "contact": "Contacts", "deal": "Potentials"}
LAYOUT = {
    "number": "Decimal",
    "bool": "Checkbox",
    "date": "Date",
    "enumeration": "Picklist",
    "string": "TextArea",
}
UPSELL = {"promoter": False, "active_within_days": 0, "won_before": True, "no_open_upgrade": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    script = find_bringup()
    assert script is not None, "bringup.sh not found (VT_BRINGUP)"
    server = RealVtiger(script)
    server.install()
    server.reset()
    org = small_org()
    seeded = seed_org(server, org)
    mapping: dict[str, dict[str, str]] = {}
    for score in SCORES:
        if score.entity in MODULES:
            mapping.setdefault(score.entity, {})[score.name] = server.add_field(
                MODULES[score.entity],
                LABEL_PREFIX + score.title,
                LAYOUT[score.kind],
                list(score.options) or None,
            )
    os.environ[KEY_ENV] = server.access_key
    folder = Path(tempfile.mkdtemp(prefix="kpisync-wb-cycles-"))
    engine = open_store(f"sqlite:///{folder / 'store.db'}")
    settings = parse_settings(
        {
            "kpisync": {"store": str(engine.url), "timezone": "UTC"},
            "sources": {
                SOURCE: {
                    "type": "vtiger",
                    "url": server.url,
                    "username": "admin",
                    "access_key_env": KEY_ENV,
                    "server_timezone": "UTC",
                }
            },
            "writeback": {"upsell": UPSELL, SOURCE: mapping},
        }
    )
    answers = folder / "nps.csv"
    accounts = {c.id: c.account_id for c in org.contacts}
    with answers.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["kind", "score", "answered_at", "respondent", "account", "id"])
        for a in org.survey_answers:
            account = a.account_id or accounts.get(a.respondent_contact_id or -1)
            contact, company = ("contact", a.respondent_contact_id), ("account", account)
            if a.kind == "nps" and contact in seeded.ids and company in seeded.ids:
                out.writerow(
                    [
                        "nps",
                        a.score,
                        a.answered_at.isoformat(),
                        seeded.ids[contact],
                        seeded.ids[company],
                        a.id,
                    ]
                )  # type: ignore[index]
    print("cycle  status     written  failed  conflicts  write-back API calls")
    for cycle in range(1, args.cycles + 1):
        time.sleep(1.1)  # past the second of the last write: the sync reads every one back
        sync_source(engine, SOURCE, build_connector(settings.source(SOURCE)), SyncOptions())
        import_surveys(engine, answers, source=SOURCE)
        connector = build_connector(settings.source(SOURCE))
        report = run_writeback(engine, settings, SOURCE, connector)
        print(
            f"{cycle:>5}  {report.status:<9} {report.written:>8} {report.failed:>7} "
            f"{report.conflicts:>10} {report.api_calls:>21}"
        )


if __name__ == "__main__":
    main()
