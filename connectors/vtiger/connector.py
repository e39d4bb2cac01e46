"""Vtiger CRM connector (open source 7.x/8.x and Persian distributions; webservice.php, API 0.22).

Objects: Accounts, Contacts, Leads, Potentials (deals), Calendar (tasks) and Events (calls,
meetings, emails) through `sync` or `query`, and NPS answers from a configured module (`survey`);
Users through `query` (never synced); the sales stages from describe. Cursor: modifiedtime in unix
seconds, closed bound with the ids seen at the
boundary dropped; `sync` where it serves, else incremental `query` (see reads, syncwalk, querywalk).
Deletes: `sync`'s deleted ids (converted leads included); by query, a live count that fell asks
the engine for an id comparison of that entity at the end of the run (deletecount); purged rows
under `sync`, the engine's periodic full id comparison (`list_ids`, `purge_check_hours`). A lead
missing from the comparison that `retrieve` still answers was converted (`explain_missing`).
Auth: getchallenge + login with md5(token + access key); the session is renewed when it ends.
Rate limits: none in Vtiger itself; a proxy's 429 waits for Retry-After; 5xx and network errors
retried; writes through `revise`, one record a call. Values: see connectors.vtiger.values.
Stage history: the webservice has none; kpisync keeps the stage of every version it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from connectors.kit.checks import probe, unreadable
from connectors.kit.streams import Stream, StreamTable
from connectors.vtiger import mappers
from connectors.vtiger.client import VtigerClient, VtigerFailure
from connectors.vtiger.conversions import converted_leads
from connectors.vtiger.fields import Schema, ensure_custom_fields, read_schema
from connectors.vtiger.reads import ENTITY, ModuleReader, ReadOptions
from connectors.vtiger.writes import CODEC, write_records
from kpisync.config import StrictModel, WebAddress, validate_model
from kpisync.connector import (
    Capability,
    FieldInfo,
    FieldSpec,
    FieldUpdate,
    Page,
    Problem,
    ProvisionStep,
    ReadMode,
    StreamSpec,
    WriteResult,
)
from kpisync.cursor import Cursor
from kpisync.errors import KpisyncError, RejectedError, SchemaDriftError
from kpisync.fieldcodec import ValueCodec
from kpisync.retry import RetryPolicy, fast_policy
from kpisync.secrets import read_secret

MODULES = ("Accounts", "Contacts", "Leads", "Potentials", "Calendar", "Events")
WRITABLE = {"account": "Accounts", "contact": "Contacts", "lead": "Leads", "deal": "Potentials"}
# Reads stop a second before the run's signpost, so a second still being written is never
# half-read (modifiedtime has one-second steps).
BOUND_LAG = timedelta(seconds=1)
SNAPSHOT_FORMAT = 1  # of metadata_snapshot(); a kept snapshot of another format is read again
ROLE_MODULE = {"account_region": "Accounts"}  # every other role is a Potentials field
USERS_HIDDEN = (
    "Vtiger user '{user}' is not an admin and cannot see the Users module (Vtiger "
    "shows it to admins only, whatever the role): record owners are known by id, "
    "without names, emails, teams or managers; groups by name"
)
USERS_HIDDEN_FIX = (
    "for owner names use an admin user's access key (no role or profile setting "
    "grants Users to a non-admin); everything else syncs as it is"
)
log = logging.getLogger(__name__)


class SurveySettings(StrictModel):
    """Where NPS answers live: stock Vtiger has no such module, so an admin builds one (Module
    Builder) or installs a survey extension; name the module and its fields here."""

    module: str = "NPSResponses"
    score: str = "score"  # 0..10
    kind: str = "survey_type"  # NPS or eNPS; empty means NPS
    contact: str = "contact_id"  # the answering contact
    account: str = "account_id"  # the account it is about (else the contact's)
    answered_at: str = "answered_on"  # a datetime in the server's time zone


class VtigerSettings(StrictModel):
    url: WebAddress  # the CRM's address, e.g. https://crm.example.com (webservice.php is added)
    username: str = "admin"
    access_key_env: str  # the user's access key (My Preferences), never the password
    server_timezone: str = "UTC"  # the zone the server writes createdtime/modifiedtime in
    read_mode: Literal["auto", "sync", "query"] = "auto"
    sync_type: Literal["application", "userandgroup", "user"] = "application"
    modules: tuple[str, ...] = MODULES
    # records a store transaction holds; one API page (100) by default, so writing a page
    # overlaps the next read (docs/decisions/connector-vtiger-reading.md)
    batch_records: int = Field(default=100, ge=1)
    timeout_seconds: float = 60.0
    fast_retries: bool = False  # tests and the demo: the same retry decisions with tiny waits
    won_stages: tuple[str, ...] = ("Closed Won",)
    lost_stages: tuple[str, ...] = ("Closed Lost",)
    # role -> field label (custom) or name, e.g. currency = "Currency"
    roles: dict[str, str] = Field(default_factory=dict)
    team_field: str = "department"  # the Users field holding a rep's team
    team_regions: dict[str, str] = Field(default_factory=dict)
    survey: SurveySettings | None = None  # NPS answers, where the CRM holds them
    # label (or name) of an Events picklist holding Inbound/Outbound: stock Vtiger keeps no call
    # direction, so an admin adds one; without it calls and emails have no direction
    direction_field: str | None = None

    @field_validator("server_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Asia/Tehran'"
            ) from None
        return value

    @field_validator("modules")
    @classmethod
    def _known_modules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in value if m not in MODULES]
        if unknown:
            raise ValueError(
                f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}"
            )
        return value


class VtigerConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.VALIDATES_OPTIONS,
            Capability.KEEPS_METADATA,
            Capability.METADATA_MOVES,
            Capability.ASKS_PURGE_CHECK,
            Capability.EXPLAINS_MISSING,
            Capability.CHECKS_CREDENTIALS,
            Capability.LINKS_RECORDS,
            Capability.CODES_VALUES,
        }
    )
    options_model: ClassVar[type[VtigerSettings]] = VtigerSettings
    type_name: ClassVar[str] = "vtiger"
    value_codec: ClassVar[ValueCodec] = CODEC

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.settings = s = validate_model(VtigerSettings, options, prefix=f"sources.{name}")
        key = read_secret(s.access_key_env, key=f"sources.{name}.access_key_env")
        policy = fast_policy() if s.fast_retries else RetryPolicy()
        self.client = VtigerClient(
            url=s.url,
            username=s.username,
            access_key=key,
            policy=policy,
            timeout_seconds=s.timeout_seconds,
        )
        self.zone = ZoneInfo(s.server_timezone)
        self._schema: Schema | None = None
        self._reader: ModuleReader | None = None
        self._kept = False  # the schema is a kept snapshot (kpisync.metadata)
        self._moved = False  # ... which the records showed out of date, so it was read again

    # -- the contract ---------------------------------------------------------------------------
    def stream_table(self) -> StreamTable:
        entities = {"Potentials": ("deal", "deal_stage_change")}
        modules = [
            Stream(
                StreamSpec(
                    m.lower(),
                    entities.get(m, (self.reader_entity(m),)),
                    cursor_field="modifiedtime",
                    lag=BOUND_LAG,
                ),
                self._read_module,
            )
            for m in self.read_modules()
        ]
        stages = Stream(
            StreamSpec("stages", ("pipeline_stage",), ReadMode.METADATA), self._read_stages
        )
        if not self.users_visible():  # owners are learnt from the records: read them first
            return StreamTable(
                "Vtiger",
                [
                    stages,
                    *modules,
                    Stream(StreamSpec("users", ("user",), ReadMode.FULL), self._read_owners_seen),
                ],
                calls=self.calls,
            )
        return StreamTable(
            "Vtiger",
            [
                Stream(StreamSpec("users", ("user",), ReadMode.METADATA), self._read_users),
                stages,
                *modules,
            ],
            calls=self.calls,
        )

    def streams(self) -> list[StreamSpec]:
        return self.stream_table().specs()

    def users_visible(self) -> bool:
        """Vtiger shows the Users module to admin users only, whatever the role."""
        return "Users" not in self.schema().hidden

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        yield from self.stream_table().read(stream, cursor, signpost)

    def _read_owners_seen(
        self, spec: StreamSpec, cursor: Cursor, signpost: datetime
    ) -> Iterator[Page]:
        log.warning(
            "%s: %s; %s",
            self.name,
            USERS_HIDDEN.format(user=self.settings.username),
            USERS_HIDDEN_FIX,
        )
        yield Page(stream=spec.name, cursor=None, records=self.reader().owners_seen())

    def _read_users(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        reader = self.reader()
        for rows in reader.users():
            yield Page(
                stream=spec.name,
                cursor=None,
                records=[mappers.map_user(r, reader.context) for r in rows],
            )

    def _read_stages(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        yield Page(
            stream=spec.name,
            cursor=None,
            records=mappers.map_stages(
                self.schema().describes["Potentials"], self.reader().context
            ),
        )

    def _read_module(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        module = next(m for m in self.read_modules() if m.lower() == spec.name)
        yield from self.reader().read(module, spec.name, cursor, signpost - spec.lag)

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        """Every module's live ids; only the asked-for entities' after `purge_check_wanted`."""
        reader = self.reader()
        asked = {self.reader_entity(m) for m in reader.deletes_unseen}
        reader.deletes_unseen.clear()
        for module in self.read_modules():
            if asked and self.reader_entity(module) not in asked:
                continue
            for ids in reader.list_ids(module):
                yield self.reader_entity(module), ids

    def explain_missing(self, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Leads missing from the listing that Vtiger still holds were converted (VTQL hides
        them): their conversion, instead of a delete (see connectors.vtiger.conversions)."""
        if entity != "lead":
            return {}
        reader = self.reader()
        return converted_leads(self.client.call, reader.query, ids, self.zone)

    def purge_check_wanted(self) -> bool:
        """After reading: modules read by query lost records, so their ids need comparing now
        (the engine then calls `list_ids`, which lists just those entities)."""
        return self._reader is not None and bool(self._reader.deletes_unseen)

    def discover(self) -> list[FieldInfo]:
        return self.schema().infos()

    def metadata_snapshot(self) -> dict[str, Any]:
        """The modules' describes (and which optional ones this user is not offered)."""
        schema = self.schema()
        return {
            "format": SNAPSHOT_FORMAT,
            "describes": dict(schema.describes),
            "hidden": list(schema.hidden),
        }

    def restore_metadata(self, snapshot: Mapping[str, Any]) -> bool:
        """Take kept describes. Records carry every field, so they are the describes'
        fingerprint: a record with a custom field the kept describe lacks (or without one it
        has) makes the reader describe again before mapping it (`_fields_moved`)."""
        if snapshot.get("format") != SNAPSHOT_FORMAT or not set(self.read_modules()) <= set(
            snapshot["describes"]
        ):
            return False
        self._schema = Schema(snapshot["describes"], hidden=tuple(snapshot["hidden"]))
        self._reader, self._kept = None, True
        return True

    def _fields_moved(self, module: str, records: list[dict[str, Any]] | None) -> None:
        """On kept describes: describe again when the records' custom fields are not the kept
        ones (a field added or removed in the CRM since), or when asked (`records` None: a read
        came back empty), and map with the new context."""
        if not self._kept or records == [] or self._reader is None:
            return
        kept = set(self.schema().custom(module))
        if records is not None and {n for n in records[0] if n.startswith("cf_")} == kept:
            return
        log.info(
            "%s: %s custom fields changed since they were described; describing again",
            self.name,
            module,
        )
        self._schema, self._kept, self._moved = None, False, True
        self._reader.context = self.context()
        self._reader.labels = {m: self.schema().custom(m) for m in self.schema().describes}

    def metadata_moved(self) -> bool:
        return self._moved

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        if entity not in WRITABLE:
            raise RejectedError(f"kpisync writes no Vtiger records of kind {entity!r}")
        return write_records(self.client, WRITABLE[entity], updates)

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]:
        return ensure_custom_fields(self.schema(), specs, WRITABLE)

    def record_url(self, entity: str, external_id: str) -> str | None:
        """The record's detail view; a webservice id "11x42" is record 42 of its module."""
        module = WRITABLE.get(entity)
        if module is None:
            return None
        record = external_id.split("x", 1)[-1]
        base = self.client.endpoint.removesuffix("webservice.php").rstrip("/")
        return f"{base}/index.php?module={module}&view=Detail&record={record}"

    def check_credentials(self) -> None:
        """Fails with the auth error when the access key is wrong: the login (2 calls) proves it,
        and a session already open was proved by its own login."""
        if self.client.session is None:
            self.client.policy.call(self.client.login)

    def check(self) -> list[Problem]:
        problems = probe(self.schema)
        if problems:
            return problems
        if not self.users_visible():
            problems.append(
                Problem(USERS_HIDDEN.format(user=self.settings.username), USERS_HIDDEN_FIX)
            )
        reader = self.reader()
        for module in self.read_modules():
            unread = unreadable([module], reader.count, "give the user's role access to {}")
            problems += unread
            if unread or self.settings.read_mode == "query":
                continue
            try:
                mode, _ = reader.choose_mode(module)
            except KpisyncError as error:
                problems.append(Problem(f"{module}: {error.message}", error.hint or ""))
                continue
            note = reader.notes.get(module, "")
            if mode == "query" and "sees" in note:
                problems.append(
                    Problem(
                        f"{module}: {note}",
                        "use an admin user with sync_type = "
                        "'application' (kpisync reads this module by query "
                        "meanwhile)",
                    )
                )
        return problems

    def api_usage(self) -> dict[str, int]:
        return dict(self.client.calls)

    def calls(self) -> int:
        return self.client.calls.total()

    def close(self) -> None:
        self.client.close()

    # -- helpers --------------------------------------------------------------------------------
    def read_modules(self) -> tuple[str, ...]:
        survey = self.settings.survey
        return (*self.settings.modules, *((survey.module,) if survey else ()))

    def reader_entity(self, module: str) -> str:
        survey = self.settings.survey
        return "survey_response" if survey and module == survey.module else ENTITY[module]

    def schema(self) -> Schema:
        if self._schema is None:
            self._schema = read_schema(self.client, self.read_modules(), optional=("Users",))
        return self._schema

    def reader(self) -> ModuleReader:
        if self._reader is None:
            s = self.settings
            self._reader = ModuleReader(
                self.client,
                self.context(),
                ReadOptions(
                    read_mode=s.read_mode,
                    sync_type=s.sync_type,
                    batch_records=s.batch_records,
                    survey_module=s.survey.module if s.survey else None,
                ),
                labels={m: self.schema().custom(m) for m in self.schema().describes},
                fields_moved=self._fields_moved,
            )
        return self._reader

    def context(self) -> mappers.MappingContext:
        schema = self.schema()
        roles: dict[str, str] = {}
        for role, label in self.settings.roles.items():
            module = ROLE_MODULE.get(role, "Potentials")
            found = schema.by_label(module, label) if module in schema.describes else None
            if found is None:
                raise SchemaDriftError(
                    f"sources.{self.name}.roles.{role}: no {module} field "
                    f"labelled or named {label!r}",
                    hint="check the label in Vtiger's layout editor",
                )
            roles[role] = found
        direction = None
        if self.settings.direction_field is not None:
            direction = schema.by_label("Events", self.settings.direction_field)
            if direction is None:
                raise SchemaDriftError(
                    f"sources.{self.name}.direction_field: no Events field "
                    f"labelled or named {self.settings.direction_field!r}",
                    hint="check the label in Vtiger's layout editor",
                )
        return mappers.MappingContext(
            zone=self.zone,
            custom={m: dict(sorted(schema.custom_types(m).items())) for m in schema.describes},
            roles=roles,
            won_stages=frozenset(self.settings.won_stages),
            lost_stages=frozenset(self.settings.lost_stages),
            prefixes=schema.prefixes(),
            team_field=self.settings.team_field,
            team_regions=dict(self.settings.team_regions),
            direction_field=direction,
            survey=None
            if self.settings.survey is None
            else mappers.SurveyFields(**self.settings.survey.model_dump(exclude={"module"})),
        )


__all__ = ["SurveySettings", "VtigerConnector", "VtigerFailure", "VtigerSettings"]
