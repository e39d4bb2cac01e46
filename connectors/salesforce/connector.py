"""Salesforce connector (REST API v59.0 by default, via simple-salesforce 1.12).

Objects: User (+ UserRole for teams), OpportunityStage (won/lost meaning), Account, Contact, Lead
(conversion fields), Opportunity (stage history from OpportunityHistory; owner at close from the
Owner rows of OpportunityFieldHistory when field-history tracking is on, else the current owner;
see connectors.salesforce.history), OpportunityLineItem,
Task (calls, emails, to-dos) and Event (meetings), and the NPS survey object (NPS_Response__c by
default; see `survey`); conversion rates (DatedConversionRate, else CurrencyType) and revenue
quotas (ForecastingQuota) where the org has them, read whole each run (connectors.salesforce.finance).
Cursor: (SystemModstamp, Id) keyset through queryAll, 2,000-row nextRecordsUrl pages; recycle-bin
rows (IsDeleted) become deletes, merged ones (MasterRecordId) merges; purged rows through the
engine's periodic full id comparison. A first sync of an object with more than
`bulk_above_records` records reads through a Bulk API 2.0 query job, and so does every sync of an
object whose fields make a REST query's URI too long (connectors.salesforce.bulk, .paging).
Auth: SOAP login (username, password, security token), or OAuth 2.0 against `login_url`: the
connected-app password flow, a refresh token, or the JWT bearer flow; production or sandbox.
Rate limits: REQUEST_LIMIT_EXCEEDED and 5xx back off; INVALID_SESSION_ID logs in again once; the
Sforce-Limit-Info usage is recorded per run; a sync refuses to start below `min_api_remaining`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from connectors.kit.checks import SETTINGS_FIX, unreadable
from connectors.kit.streams import Stream, StreamTable
from connectors.salesforce import finance, mappers
from connectors.salesforce.client import Credentials, SalesforceClient
from connectors.salesforce.fields import describe, field_infos, setup_steps
from connectors.salesforce.history import OWNERS, STAGES
from connectors.salesforce.paging import list_ids
from connectors.salesforce.reads import BASE_FIELDS, ENTITIES, SYSTEM, ReadOptions, StreamReader
from connectors.salesforce.writes import CODEC, write_collections
from kpisync.config import ReadableFile, StrictModel, WebAddress, validate_model
from kpisync.connector import (
    LIMIT_PREFIX,
    Allowance,
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
from kpisync.errors import KpisyncError, RateLimited, RejectedError
from kpisync.fieldcodec import ValueCodec
from kpisync.retry import RetryPolicy, fast_policy
from kpisync.secrets import read_secret

COMPOUND_TYPES = ("address", "location")  # read as their components (connector.custom_fields)
INCREMENTAL = ("Account", "Contact", "Lead", "Opportunity", "OpportunityLineItem", "Task", "Event")
WRITABLE = {
    "account": "Account",
    "contact": "Contact",
    "lead": "Lead",
    "deal": "Opportunity",
    "user": "User",
}
SNAPSHOT_FORMAT = 1  # of metadata_snapshot(); a kept snapshot of another format is read again
DESCRIBED = (
    "name",
    "label",
    "type",
    "custom",
    "updateable",
    "picklistValues",
    "compoundFieldName",
)  # the parts of a described field kpisync uses


def _query(sf: Any, *, soql: str, timeout: Any) -> Any:
    return sf.query(soql, timeout=timeout)


class SurveySettings(StrictModel):
    object: str = "NPS_Response__c"
    score: str = "Score__c"
    contact: str = "Contact__c"
    account: str = "Account__c"
    answered_at: str = "Answered_At__c"
    kind: str = "Survey_Type__c"


class SalesforceSettings(StrictModel):
    login_url: WebAddress | None = None  # default https://login.salesforce.com (test. when sandbox)
    sandbox: bool = False
    api_version: str = "59.0"
    username: str | None = None
    password_env: str | None = None
    security_token_env: str | None = None
    client_id: str | None = None  # the connected app's consumer key
    client_secret_env: str | None = None
    refresh_token_env: str | None = None
    private_key_file: ReadableFile | None = None  # JWT bearer: the connected app's key (PEM)
    ca_bundle: ReadableFile | None = None  # PEM of the CA(s) to trust; checks are never off
    timeout_seconds: float = Field(default=60.0, gt=0)
    lag_seconds: float = Field(default=60.0, ge=0)
    batch_records: int = Field(default=2000, ge=200, le=2000)
    bulk_above_records: int = Field(default=200_000, ge=0)
    bulk_page_records: int = Field(default=10_000, ge=1)
    bulk_poll_seconds: float = Field(default=5.0, ge=0)
    min_api_remaining: int = Field(default=5000, ge=0)
    fast_retries: bool = False
    survey: SurveySettings = SurveySettings()
    forecast_period: Literal["month", "quarter"] = "quarter"  # Collaborative Forecasts' period
    roles: dict[str, str] = {}
    team_regions: dict[str, str] = {}

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"\d{2}\.0", value):
            raise ValueError(f"{value!r} is not an API version such as '59.0'")
        return value

    @model_validator(mode="after")
    def _one_flow(self) -> SalesforceSettings:
        self.credentials_flow()
        return self

    def credentials_flow(self) -> str:
        if self.private_key_file:
            if not (self.client_id and self.username):
                raise ValueError(
                    "the JWT bearer flow needs client_id, username and private_key_file"
                )
            return "jwt"
        if self.refresh_token_env:
            if not self.client_id:
                raise ValueError("the refresh-token flow needs client_id and refresh_token_env")
            return "refresh_token"
        if not (self.username and self.password_env):
            raise ValueError(
                "give username and password_env (with security_token_env), or "
                "client_id with refresh_token_env, or client_id, username and "
                "private_key_file for the JWT bearer flow"
            )
        return "password" if self.client_id else "soap"

    def base_login_url(self) -> str:
        if self.login_url:
            return self.login_url
        return "https://test.salesforce.com" if self.sandbox else "https://login.salesforce.com"


def custom_fields(described: list[dict[str, Any]]) -> tuple[str, ...]:
    """The custom fields to read: every `__c` field, except that a compound one (a custom address
    or geolocation) is read as its components (`__s`), as the Bulk API refuses compound fields."""
    compound = {
        str(f["name"])
        for f in described
        if f.get("type") in COMPOUND_TYPES and str(f["name"]).endswith("__c")
    }
    return tuple(
        str(f["name"])
        for f in described
        if (str(f["name"]).endswith("__c") and str(f["name"]) not in compound)
        or f.get("compoundFieldName") in compound
    )


class SalesforceConnector:
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.VALIDATES_OPTIONS,
            Capability.KEEPS_METADATA,
            Capability.REPORTS_ALLOWANCE,
            Capability.CHECKS_CREDENTIALS,
            Capability.LINKS_RECORDS,
            Capability.CODES_VALUES,
        }
    )
    options_model: ClassVar[type[SalesforceSettings]] = SalesforceSettings
    type_name: ClassVar[str] = "salesforce"
    value_codec: ClassVar[ValueCodec] = CODEC

    @staticmethod
    def reports_daily_limit(options: Mapping[str, Any]) -> bool:
        """Every answer carries Sforce-Limit-Info, and the limits resource says it too."""
        return True

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        key = f"sources.{name}"
        self.settings = s = validate_model(SalesforceSettings, options, prefix=key)

        def secret(field: str | None, label: str) -> str | None:
            return read_secret(field, key=f"{key}.{label}") if field else None

        credentials = Credentials(
            flow=s.credentials_flow(),
            username=s.username,
            password=secret(s.password_env, "password_env"),
            security_token=secret(s.security_token_env, "security_token_env") or "",
            client_id=s.client_id,
            client_secret=secret(s.client_secret_env, "client_secret_env"),
            refresh_token=secret(s.refresh_token_env, "refresh_token_env"),
            private_key_file=s.private_key_file,
        )
        self.client = SalesforceClient(
            credentials=credentials,
            login_url=s.base_login_url(),
            version=s.api_version,
            ca_bundle=s.ca_bundle,
            policy=fast_policy() if s.fast_retries else RetryPolicy(),
            timeout_seconds=s.timeout_seconds,
        )
        self.survey_object = s.survey.object
        self._described: dict[str, dict[str, Any]] = {}
        self._counts: dict[str, int] | None = None
        self._reader: StreamReader | None = None
        self._allowance_checked = False
        self._tracking: bool | None = None
        self._present: dict[str, bool] = {}
        self._stage_rows: list[dict[str, Any]] = []
        self._kept_stages = False
        self._streams_read = 0

    @property
    def objects(self) -> tuple[str, ...]:
        return ("User", "OpportunityStage", *INCREMENTAL, self.survey_object)

    # -- the contract ---------------------------------------------------------------------------
    def stream_table(self) -> StreamTable:
        lag = timedelta(seconds=self.settings.lag_seconds)
        keyset = [
            Stream(
                StreamSpec(
                    o,
                    ("survey_response",) if o == self.survey_object else ENTITIES[o],
                    cursor_field="SystemModstamp",
                    primary_key="Id",
                    lag=lag,
                ),
                self._read_keyset,
            )
            for o in (*INCREMENTAL, self.survey_object)
        ]
        return StreamTable(
            "Salesforce",
            [
                Stream(
                    StreamSpec("User", ENTITIES["User"], ReadMode.METADATA, primary_key="Id"),
                    self._read_users,
                ),
                Stream(
                    StreamSpec(
                        "OpportunityStage",
                        ENTITIES["OpportunityStage"],
                        ReadMode.METADATA,
                        primary_key="Id",
                    ),
                    self._read_stages,
                ),
                *keyset,
                Stream(
                    StreamSpec(
                        finance.RATES_STREAM, ("exchange_rate",), ReadMode.FULL, primary_key="Id"
                    ),
                    self._read_rates,
                ),
                Stream(
                    StreamSpec(finance.QUOTA, ("quota",), ReadMode.FULL, primary_key="Id"),
                    self._read_quotas,
                ),
            ],
            calls=lambda: self.client.calls_made().total(),
        )

    def streams(self) -> list[StreamSpec]:
        return self.stream_table().specs()

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        self.reader()
        if self._streams_read or self.client.api_used is not None:
            self.guard_allowance()  # on kept metadata: after the first stream, whose answers
        self._streams_read += 1  # carry the org's usage (a limits call only without them)
        yield from self.stream_table().read(stream, cursor, signpost)

    def _read_users(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        yield from self.reader().read_users()

    def _read_stages(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        rows = self._stage_rows or self.reader().read_stages()
        yield Page(stream=spec.name, records=[mappers.map_stage(r) for r in rows])

    def _read_keyset(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        yield from self.reader().read(spec.name, cursor, signpost, self.record_count)

    def _read_rates(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        yield Page(stream=spec.name, records=finance.read_rates(self.reader().pager, self.has))

    def _read_quotas(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        rows = finance.read_quotas(
            self.reader().pager,
            self.has,
            self.settings.forecast_period,
            self.has_field(finance.QUOTA, "CurrencyIsoCode"),
        )
        yield Page(stream=spec.name, records=rows)

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        reader = self.reader()
        for sobject in (*INCREMENTAL, self.survey_object):
            for ids in list_ids(reader.pager, sobject):
                yield reader.entity_of(sobject), ids
        yield from finance.ids_of(reader.pager, self.has)

    def discover(self) -> list[FieldInfo]:
        """describe of every synced object; a sync starts here, so the allowance floor too."""
        self.guard_allowance()
        return [
            info
            for sobject in self.objects
            for info in field_infos(sobject, self.described(sobject))
        ]

    def metadata_snapshot(self) -> dict[str, Any]:
        """What describe said of each object this run asked about (the parts the reader uses),
        which objects the org lacks, and the opportunity stages."""
        self.reader()
        described = {
            o: {"fields": [{k: f[k] for k in DESCRIBED if k in f} for f in d.get("fields", [])]}
            for o, d in self._described.items()
        }
        return {
            "format": SNAPSHOT_FORMAT,
            "described": described,
            "present": self._present,
            "tracking": self.tracking(),
            "stages": self._stage_rows,
        }

    def restore_metadata(self, snapshot: Mapping[str, Any]) -> bool:
        """Take kept metadata; the allowance floor is then checked after the run's first call,
        whose answer carries the org's usage, instead of by a call of its own."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            return False
        self._described = {o: dict(d) for o, d in snapshot["described"].items()}
        self._present = dict(snapshot["present"])
        self._tracking = bool(snapshot["tracking"])
        self._stage_rows = list(snapshot["stages"])
        self._kept_stages = True
        self._reader = None
        return True

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        if entity not in WRITABLE:
            raise RejectedError(f"Salesforce records of kind {entity!r} are not written by kpisync")
        return write_collections(self.client, WRITABLE[entity], updates)

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]:
        existing = {
            o: {str(f["name"]).lower() for f in self.described(o).get("fields", [])}
            for o in {WRITABLE[s.entity] for s in specs if s.entity in WRITABLE}
        }
        return setup_steps(specs, WRITABLE, existing)

    def record_url(self, entity: str, external_id: str) -> str | None:
        """The record's Lightning page on the org's instance."""
        sobject = WRITABLE.get(entity)
        if sobject is None:
            return None
        instance = self.client.connect().base_url.split("/services/")[0]
        return f"{instance}/lightning/r/{sobject}/{external_id}/view"

    def check_credentials(self) -> None:
        """One call that fails with the auth error when the credentials are wrong."""
        self.allowance()

    def check(self) -> list[Problem]:
        try:
            remaining, limit = self.allowance()
        except KpisyncError as error:
            return [Problem(error.message, error.hint or SETTINGS_FIX)]
        problems = unreadable(
            self.objects,
            lambda o: self.client.call(
                "GET query",
                partial(_query, soql=f"SELECT Id FROM {o} LIMIT 1", timeout=self.client.timeout),
            ),
            "give the integration user read access to {}",
        )
        if not problems and not self.tracking():
            problems.append(
                Problem(
                    f"{OWNERS} is not available (field-history tracking is off): owner at close will "
                    "be the current owner",
                    "in Setup > Object Manager > Opportunity > Fields & "
                    "Relationships > Set History Tracking, track Opportunity Owner; syncs go on "
                    "without it",
                )
            )
        if remaining < self.settings.min_api_remaining:
            problems.append(
                Problem(
                    f"only {remaining} of {limit} daily API calls left",
                    "wait for the 24-hour allowance to recover, or lower min_api_remaining",
                )
            )
        return problems

    def api_usage(self) -> dict[str, int]:
        usage = dict(self.client.calls_made())
        if self.client.api_used is not None and self.client.api_max is not None:
            usage[f"{LIMIT_PREFIX}api-usage-used"] = self.client.api_used
            usage[f"{LIMIT_PREFIX}api-usage-max"] = self.client.api_max
        return usage

    def api_allowance(self) -> Allowance:
        """The org's daily API limit and what is left of it, as the last Sforce-Limit-Info
        header gave them (the limits resource is asked when no call has been made yet)."""
        used, limit = self.client.api_used, self.client.api_max
        if used is None or limit is None:
            remaining, limit = self.allowance()
            return Allowance(daily_limit=limit, daily_remaining=remaining)
        return Allowance(daily_limit=limit, daily_remaining=max(0, limit - used))

    def close(self) -> None:
        self.client.close()

    # -- helpers ---------------------------------------------------------------------------------
    def allowance(self) -> tuple[int, int]:
        limits = self.client.call("GET limits", lambda sf: sf.limits(timeout=self.client.timeout))
        daily = limits.get("DailyApiRequests") or {}
        return int(daily.get("Remaining", 0)), int(daily.get("Max", 0))

    def guard_allowance(self) -> None:
        if self._allowance_checked:
            return
        reading = self.api_allowance()  # a limits call only when no call has been made yet
        remaining, limit = reading.daily_remaining or 0, reading.daily_limit or 0
        if remaining < self.settings.min_api_remaining:
            raise RateLimited(
                f"refusing to sync {self.name}: {remaining} of {limit} daily API calls left, below "
                f"min_api_remaining = {self.settings.min_api_remaining}",
                hint="wait for the 24-hour allowance to recover (other integrations share it), "
                "or lower min_api_remaining",
            )
        self._allowance_checked = True

    def described(self, sobject: str) -> dict[str, Any]:
        if sobject not in self._described:
            self._described[sobject] = describe(self.client, sobject)
        return self._described[sobject]

    def tracking(self) -> bool:
        """Whether OpportunityFieldHistory exists (its describe answers 404 when tracking is off)."""
        if self._tracking is None:
            self._tracking = self.has(OWNERS)
        return self._tracking

    def has(self, sobject: str) -> bool:
        """Whether the org has `sobject`: its describe answers 404 when a feature is off."""
        if sobject not in self._present:
            try:
                self.described(sobject)
                self._present[sobject] = True
            except RejectedError as error:
                if "NOT_FOUND" not in error.message:
                    raise
                self._present[sobject] = False
        return self._present[sobject]

    def has_field(self, sobject: str, name: str) -> bool:
        return self.has(sobject) and any(
            f.get("name") == name for f in self.described(sobject).get("fields", [])
        )

    def record_count(self, sobject: str) -> int:
        if self._counts is None:
            names = ",".join(
                [
                    *(o for o in self.objects if o not in ("User", "OpportunityStage")),
                    STAGES,
                    *((OWNERS,) if self.tracking() else ()),
                ]
            )
            response = self.client.restful(
                "GET limits/recordCount", "limits/recordCount", params={"sObjects": names}
            )
            self._counts = {str(c["name"]): int(c["count"]) for c in response.get("sObjects", [])}
        return self._counts.get(sobject, 0)

    def reader(self) -> StreamReader:
        if self._reader is None:
            s = self.settings
            fields, kinds, custom = {}, {}, {}
            for sobject in self.objects:
                fields_of = self.described(sobject).get("fields", [])
                described = {str(f["name"]): str(f["type"]) for f in fields_of}
                kinds[sobject] = described
                custom[sobject] = custom_fields(fields_of)
                wanted = (
                    *SYSTEM,
                    *BASE_FIELDS.get(sobject, ()),
                    *custom[sobject],
                    *s.roles.values(),
                )
                fields[sobject] = tuple(dict.fromkeys(n for n in wanted if n in described))
            stages = {}
            self._reader = StreamReader(
                self.client,
                mappers.MappingContext(),
                fields,
                kinds,
                self.read_options(),
                self.survey_object,
                self.tracking(),
            )
            if not self._kept_stages:
                self._stage_rows = self._reader.read_stages()  # once a run: meaning and stream
            for row in self._stage_rows:
                stages[str(row["ApiName"])] = mappers.StageInfo(
                    mappers.flag(row["IsClosed"]), mappers.flag(row["IsWon"])
                )
            survey = mappers.SurveyFields(**s.survey.model_dump(exclude={"object"}))
            self._reader.context = mappers.MappingContext(
                stages=stages,
                custom=custom,
                roles=dict(s.roles),
                team_regions=dict(s.team_regions),
                survey=survey,
            )
        return self._reader

    def read_options(self) -> ReadOptions:
        s = self.settings
        return ReadOptions(
            lag=timedelta(seconds=s.lag_seconds),
            batch_size=s.batch_records,
            bulk_above_records=s.bulk_above_records,
            bulk_page_records=s.bulk_page_records,
            bulk_poll_seconds=s.bulk_poll_seconds,
        )
