"""`kpisync demo --crm X` configures X's own KPI roles: its qualified lead statuses and its segment
field, so the same synthetic org gives the same qualified leads and segment figures on each CRM."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulators.org.generate import generate_org
from kpisync.config import load_settings
from kpisync.demo import demo_settings
from kpisync.demo_crms import DEMO_CRMS
from kpisync.registry import build_connector
from kpisync.store.database import open_store
from kpisync.sync import SyncOptions, sync_source
from metrics.engine import compute_values
from metrics.options import metric_config

ORG = generate_org(seed=5, deals=40)
NOW = datetime(2026, 10, 31, tzinfo=UTC)
ROLES = {
    "hubspot": (("CONNECTED",), "segment"),
    "salesforce": (("Qualified",), "Segment__c"),
    "vtiger": (("Qualified",), "cf_"),
}


def segment_and_qualified(crm: str, folder: Path) -> tuple[dict[str, float], float]:
    """The demo's settings for `crm`; 2026 revenue by segment and qualified leads, after a sync."""
    demo = DEMO_CRMS[crm]
    with demo.serve(ORG) as emulator:
        path = folder / "settings.toml"
        path.write_text(demo_settings(demo, emulator, folder / "kpisync.db"), "utf-8")
        settings = load_settings(path)
        roles = metric_config(settings).metrics.roles
        statuses, field = ROLES[crm]
        assert roles.qualified_lead_statuses == statuses
        assert (roles.segment_field or "").startswith(field)
        engine = open_store(f"sqlite:///{folder / 'kpisync.db'}")
        connector = build_connector(settings.source(demo.source))
        assert sync_source(engine, demo.source, connector, SyncOptions()).status == "succeeded"
        connector.close()
    with engine.begin() as connection:
        values = compute_values(
            connection, metric_config(settings), now=NOW, only=["sales_volume", "qualified_leads"]
        )
    engine.dispose()
    year = [v for v in values if v.period == "year" and v.period_start.year == 2026]
    segments = {
        v.key: round(v.value or 0, 2)
        for v in year
        if (v.kpi, v.grain) == ("sales_volume", "segment")
    }
    [qualified] = [v.value for v in year if (v.kpi, v.grain) == ("qualified_leads", "org")]
    return segments, qualified or 0.0


@pytest.fixture(scope="module")
def hubspot(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, float], float]:
    segments, qualified = segment_and_qualified("hubspot", tmp_path_factory.mktemp("hubspot"))
    assert len(segments) >= 2 and qualified > 0  # the segment field and CONNECTED are read
    return segments, qualified


@pytest.mark.parametrize("crm", ["salesforce", "vtiger"])
def test_each_demo_crm_has_the_segments_and_qualified_leads_hubspot_has(
    crm: str, hubspot: tuple[dict[str, float], float], tmp_path: Path
) -> None:
    segments, qualified = hubspot
    theirs, their_qualified = segment_and_qualified(crm, tmp_path)
    assert theirs == segments
    if crm == "salesforce":  # Vtiger hides converted leads (see tests/test_kpi_parity.py)
        assert their_qualified == qualified
