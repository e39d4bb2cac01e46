"""The CRMs `kpisync demo` runs on: each one's emulator, settings and write-back fields.

Each demo CRM serves the same synthetic org from its own emulator and knows what an admin of
that CRM would configure: the source's settings, the stage names the KPI roles point at, and the
fields the scores are written into (HubSpot's are created through its API by kpisync; Salesforce
and Vtiger admins add custom fields in Setup or the layout editor, which the demo does on the
emulator). Records are read back through each CRM's own API, as a rep's screen would show them.

Each CRM imports its emulator inside its methods, on purpose: only the CRM asked for is loaded
(importing the Salesforce emulator, with its certificate authority, takes 0.3-0.5 s, HubSpot's and
Vtiger's about 0.15 s: docs/decisions/import-layers.md), and other commands never load one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import httpx

from emulators.org.model import Org
from emulators.server import Knobs


class DemoCrm:
    """What the demo needs of one CRM; the subclasses fill it in."""

    key: ClassVar[str]  # as `--crm` names it
    name: ClassVar[str]
    source: ClassVar[str]
    record_word: ClassVar[dict[str, str]]  # entity -> the CRM's word for such a record
    provisions_fields: ClassVar[bool] = False  # kpisync creates the fields through the API
    default_port: ClassVar[int]  # where `kpisync sandbox serve` listens unless told otherwise

    def serve(self, org: Org, knobs: Knobs | None = None, ca_folder: Path | None = None) -> Any:
        """The CRM's emulator serving `org` (not started yet); Salesforce keeps its certificate
        authority in `ca_folder` when one is given."""
        raise NotImplementedError

    def knobs(self, latency_seconds: float, fault_rate: float, seed: int = 0) -> Knobs:
        """The emulator's knobs: `fault_rate` of the calls fail, half with the CRM's rate-limit
        answer and half with a 5xx, drawn from `seed` so that a run repeats."""
        return Knobs(
            latency_seconds=latency_seconds,
            rate_429=fault_rate / 2,
            rate_5xx=fault_rate / 2,
            fault_seed=seed,
        )

    def credentials(self) -> dict[str, str]:
        """The fixed demo credentials: environment variable -> value (the settings name the
        variables, never the values)."""
        raise NotImplementedError

    def source_settings(self, emulator: Any) -> str:
        """The body of the source's [sources.NAME] table; its secrets go into the environment."""
        raise NotImplementedError

    def stage_name(self, emulator: Any, key: str) -> str:
        """How deals of this CRM name the synthetic org's stage `key`."""
        raise NotImplementedError

    def qualified_statuses(self, emulator: Any) -> tuple[str, ...]:
        """The lead statuses this CRM's admin would call qualified (metrics.roles)."""
        raise NotImplementedError

    def segment_field(self, emulator: Any) -> str:
        """The name of this CRM's account field holding the org's "Segment" (metrics.roles)."""
        raise NotImplementedError

    def add_field(
        self,
        emulator: Any,
        entity: str,
        score: str,
        kind: str,
        label: str,
        options: tuple[str, ...],
    ) -> str:
        """The field `score` is written into on `entity`'s records, added as the CRM's admin
        would; its name."""
        raise NotImplementedError

    def read_record(
        self, emulator: Any, connector: Any, entity: str, external_id: str, fields: Iterable[str]
    ) -> dict[str, Any]:
        raise NotImplementedError


class HubSpotDemo(DemoCrm):
    key = "hubspot"
    name = "HubSpot"
    source = "demo_hubspot"
    record_word = {"account": "company", "contact": "contact", "deal": "deal"}
    provisions_fields = True
    default_port = 18601
    token_env = "KPISYNC_DEMO_HUBSPOT_TOKEN"
    token = "pat-na1-demo-emulator"

    def serve(self, org: Org, knobs: Knobs | None = None, ca_folder: Path | None = None) -> Any:
        from emulators.hubspot.emulator import HubSpotEmulator

        return HubSpotEmulator(org, access_token=self.token, knobs=knobs)

    def knobs(self, latency_seconds: float, fault_rate: float, seed: int = 0) -> Knobs:
        from emulators.hubspot.emulator import HubSpotKnobs

        return HubSpotKnobs(
            latency_seconds=latency_seconds,
            rate_429=fault_rate / 2,
            rate_5xx=fault_rate / 2,
            fault_seed=seed,
        )

    def credentials(self) -> dict[str, str]:
        return {self.token_env: self.token}

    def source_settings(self, emulator: Any) -> str:
        return f"""type = "hubspot"
host = "{emulator.base_url}"
token_env = "{self.token_env}"
search_lag_seconds = 0
fast_retries = true
roles = {{ deal_type = "deal_category", competitor = "competitor", margin = "margin" }}
team_regions = {{ "Team Alpha" = "EMEA", "Team Bravo" = "NA", "Team Charlie" = "APAC" }}"""

    def stage_name(self, emulator: Any, key: str) -> str:
        return key.replace("_", "")  # HubSpot's internal stage ids: "qualifiedtobuy"

    def qualified_statuses(self, emulator: Any) -> tuple[str, ...]:
        return ("CONNECTED",)  # hs_lead_status; a converted lead counts as qualified anyway

    def segment_field(self, emulator: Any) -> str:
        return "segment"  # the company property's internal name

    def add_field(
        self,
        emulator: Any,
        entity: str,
        score: str,
        kind: str,
        label: str,
        options: tuple[str, ...],
    ) -> str:
        return f"kpisync_{score}"  # created by kpisync through the API (provisions_fields)

    def read_record(
        self, emulator: Any, connector: Any, entity: str, external_id: str, fields: Iterable[str]
    ) -> dict[str, Any]:
        kind = {"account": "companies", "contact": "contacts", "deal": "deals"}[entity]
        response = httpx.get(
            f"{emulator.base_url}/crm/v3/objects/{kind}/{external_id}",
            params={"properties": ",".join(fields)},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10.0,
        )
        response.raise_for_status()
        return dict(response.json().get("properties") or {})


class SalesforceDemo(DemoCrm):
    key = "salesforce"
    name = "Salesforce"
    source = "demo_salesforce"
    record_word = {"account": "Account", "contact": "Contact", "deal": "Opportunity"}
    default_port = 18602
    password_env = "KPISYNC_DEMO_SALESFORCE_PASSWORD"
    token_env = "KPISYNC_DEMO_SALESFORCE_TOKEN"

    def serve(self, org: Org, knobs: Knobs | None = None, ca_folder: Path | None = None) -> Any:
        from emulators.salesforce.emulator import SalesforceEmulator

        return SalesforceEmulator(org, knobs=knobs, ca_folder=ca_folder)

    def knobs(self, latency_seconds: float, fault_rate: float, seed: int = 0) -> Knobs:
        from emulators.salesforce.emulator import SalesforceKnobs

        return SalesforceKnobs(
            latency_seconds=latency_seconds,
            rate_429=fault_rate / 2,
            rate_5xx=fault_rate / 2,
            fault_seed=seed,
        )

    def credentials(self) -> dict[str, str]:
        from emulators.salesforce.emulator import OrgLogin

        login = OrgLogin()
        return {self.password_env: login.password, self.token_env: login.security_token}

    def source_settings(self, emulator: Any) -> str:
        login = emulator.login
        return f"""type = "salesforce"
login_url = "{emulator.base_url}"
ca_bundle = "{emulator.ca_path}"  # the emulator's own certificate authority
username = "{login.username}"
password_env = "{self.password_env}"
security_token_env = "{self.token_env}"
lag_seconds = 0
bulk_poll_seconds = 0.1
fast_retries = true
roles = {{ deal_type = "Deal_category__c" }}
team_regions = {{ "Team Alpha" = "EMEA", "Team Bravo" = "NA", "Team Charlie" = "APAC" }}"""

    def stage_name(self, emulator: Any, key: str) -> str:
        label: str = next(stage.label for stage in emulator.org.stages if stage.key == key)
        return label

    def qualified_statuses(self, emulator: Any) -> tuple[str, ...]:
        return ("Qualified",)  # Lead.Status

    def segment_field(self, emulator: Any) -> str:
        return "Segment__c"  # the API name Setup gives the custom field "Segment"

    def add_field(
        self,
        emulator: Any,
        entity: str,
        score: str,
        kind: str,
        label: str,
        options: tuple[str, ...],
    ) -> str:
        return str(
            emulator.add_custom_field(
                self.record_word[entity], f"kpisync_{score}", kind, label, options
            )
        )  # Setup > Object Manager

    def read_record(
        self, emulator: Any, connector: Any, entity: str, external_id: str, fields: Iterable[str]
    ) -> dict[str, Any]:
        sobject = self.record_word[entity]
        record = connector.client.restful(
            f"GET sobjects/{sobject}/{{id}}",
            f"sobjects/{sobject}/{external_id}",
            params={"fields": ",".join(fields)},
        )
        return dict(record)


class VtigerDemo(DemoCrm):
    key = "vtiger"
    name = "Vtiger"
    source = "demo_vtiger"
    record_word = {"account": "organization", "contact": "contact", "deal": "opportunity"}
    default_port = 18603
    key_env = "KPISYNC_DEMO_VTIGER_KEY"

    def serve(self, org: Org, knobs: Knobs | None = None, ca_folder: Path | None = None) -> Any:
        from emulators.vtiger.emulator import VtigerEmulator

        return VtigerEmulator(org, knobs=knobs)

    def credentials(self) -> dict[str, str]:
        from emulators.vtiger.emulator import ADMIN_KEY

        return {self.key_env: ADMIN_KEY}

    def source_settings(self, emulator: Any) -> str:
        return f"""type = "vtiger"
url = "{emulator.base_url}"
access_key_env = "{self.key_env}"
server_timezone = "{emulator.zone.key}"
fast_retries = true
direction_field = "Direction"
survey = {{ module = "NPSResponses" }}
roles = {{ currency = "Currency", loss_reason = "Loss reason", competitor = "Competitor", \
margin = "Margin", deal_type = "Deal category" }}"""

    def stage_name(self, emulator: Any, key: str) -> str:
        from emulators.vtiger.schema import STAGE_LABELS

        return STAGE_LABELS[key]

    def qualified_statuses(self, emulator: Any) -> tuple[str, ...]:
        return ("Qualified",)  # leadstatus

    def segment_field(self, emulator: Any) -> str:
        return str(emulator.schema.cf("Accounts", "Segment"))  # cf_NNN, found by its label

    def add_field(
        self,
        emulator: Any,
        entity: str,
        score: str,
        kind: str,
        label: str,
        options: tuple[str, ...],
    ) -> str:
        modules = {"account": "Accounts", "contact": "Contacts", "deal": "Potentials"}
        return str(emulator.add_custom_field(modules[entity], label, kind, options))  # cf_NNN

    def read_record(
        self, emulator: Any, connector: Any, entity: str, external_id: str, fields: Iterable[str]
    ) -> dict[str, Any]:
        record = connector.client.call("retrieve", id=external_id)
        return {name: record.get(name) for name in fields}


DEMO_CRMS: dict[str, DemoCrm] = {
    "hubspot": HubSpotDemo(),
    "salesforce": SalesforceDemo(),
    "vtiger": VtigerDemo(),
}
