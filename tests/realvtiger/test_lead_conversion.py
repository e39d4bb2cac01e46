"""On the real Vtiger 8.2: a lead converted in the web UI's way (its records made by the lead's
conversion mapping, marked isconvertedfromlead; the lead hidden from VTQL) is stored as converted,
at its conversion time, with the contact, account and deal it became; a deleted lead as deleted."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from kpisync.store.database import open_store
from kpisync.store.models import Lead
from kpisync.sync import SyncOptions, sync_source
from tests.realvtiger.kit import ServedRealVtiger
from tests.realvtiger.server import RealVtiger, Seeded


def test_a_converted_lead_is_converted_not_deleted(
    seeded_org: tuple[RealVtiger, Seeded], tmp_path: Path
) -> None:
    server, seeded = seeded_org
    served = ServedRealVtiger(server, seeded)
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    assert (
        sync_source(engine, served.source, served.connector(), SyncOptions()).status == "succeeded"
    )
    web = server.web()
    converted, plain, deleted = [r["id"] for r in web.query_all("Leads", "id")][:3]
    made = server.convert_lead(converted, ("Accounts", "Contacts", "Potentials"))
    server.convert_lead(plain, ("Contacts",))
    web.delete(deleted)
    lead_row = server.sql(
        f"SELECT converted FROM vtiger_leaddetails WHERE leadid = {converted.partition('x')[2]}"
    )
    (stamp,) = server.sql(
        f"SELECT modifiedtime FROM vtiger_crmentity WHERE crmid = {converted.partition('x')[2]}"
    )[0]
    assert lead_row == [("1",)]
    for module, ws_id in made.items():
        if module != "leadId":
            assert web.retrieve(ws_id)["isconvertedfromlead"] == "1"
    time.sleep(1.1)
    assert (
        sync_source(engine, served.source, served.connector(), SyncOptions()).status == "succeeded"
    )
    with engine.connect() as connection:
        rows = {
            r.external_id: r
            for r in connection.execute(
                select(Lead).where(col(Lead.external_id).in_([converted, plain, deleted]))
            )
        }
    lead = rows[converted]
    assert lead.deleted_at is None and lead.is_converted
    assert lead.converted_at == datetime.strptime(str(stamp), "%Y-%m-%d %H:%M:%S").replace(
        tzinfo=UTC
    )
    assert (lead.converted_contact_id, lead.converted_account_id, lead.converted_deal_id) == (
        made["Contacts"],
        made["Accounts"],
        made["Potentials"],
    )
    assert rows[plain].is_converted and rows[plain].converted_deal_id is None
    assert rows[deleted].deleted_at is not None and not rows[deleted].is_converted
    # The conversion moved the leads' activities to their new contacts without moving the
    # activities' modifiedtime: only a full read sees that (docs/decisions/vtiger-lead-conversion.md)
    assert (
        sync_source(engine, served.source, served.connector(), SyncOptions(full=True)).status
        == "succeeded"
    )
    served.assert_store_equals_truth(engine)
    with engine.connect() as connection:
        assert connection.execute(
            select(col(Lead.is_converted), col(Lead.deleted_at)).where(
                col(Lead.external_id) == converted
            )
        ).one() == (True, None)
    engine.dispose()
