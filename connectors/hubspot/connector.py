"""HubSpot CRM connector (CRM v3 via hubspot-api-client 12).

Objects: companies, contacts (canonical contacts and leads), deals (with their stage history, owner
at close and company/contact associations), line items (each with its deal from a v4
line_items->deals association read), owners, deal pipelines, calls, emails, meetings, tasks,
feedback submissions (NPS). A deal's stage path comes from the v2 stage-calculated
properties its search page carries; property history is read (batch/read) only for the deals those
cannot prove, or whose owner was assigned after they closed (see connectors.hubspot.stages).
Cursor: `lastmodifieddate` (contacts) / `hs_lastmodifieddate` (the rest) through the search API,
closed lower bound with ids seen at the boundary dropped; see connectors.hubspot.search.
Deletes: archived records (listed in full, as HubSpot cannot filter them by time, at most every
`archived_every_minutes` per object); purged records through the engine's periodic full id
comparison; merges via `hs_merged_object_ids`. Metadata (properties, pipelines, owners) is kept
between runs and read again when due (kpisync.metadata).
Auth: a private-app token, or OAuth (client id + secret + refresh token), refreshed ahead of expiry.
Rate limits: 429s wait for Retry-After (search: 5 requests/s); 5xx and network errors retried.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import model_validator

from connectors.hubspot import mappers
from connectors.hubspot.client import HubSpotClient, OAuthGrant
from connectors.hubspot.fields import discover_fields, ensure_properties
from connectors.hubspot.reads import (
    DEFAULT_MODIFIED,
    ENTITIES,
    MODIFIED_PROPERTY,
    ReadOptions,
    StreamReader,
)
from connectors.hubspot.search import next_after
from connectors.hubspot.writes import CODEC, write_batches
from connectors.kit.checks import probe, unreadable
from connectors.kit.paging import follow
from connectors.kit.streams import Stream, StreamTable
from kpisync.config import StrictModel, WebAddress, validate_model
from kpisync.connector import (
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
from kpisync.errors import RejectedError
from kpisync.fieldcodec import ValueCodec
from kpisync.retry import RetryPolicy, fast_policy
from kpisync.secrets import read_secret
from kpisync.store.models import Row

SEARCHED = (
    "companies",
    "contacts",
    "deals",
    "line_items",
    "calls",
    "emails",
    "meetings",
    "tasks",
    "feedback_submissions",
)
WRITABLE = {"account": "companies", "contact": "contacts", "deal": "deals"}
OBJECT_TYPE_IDS = {"contact": "0-1", "account": "0-2", "deal": "0-3"}  # in HubSpot's record URLs
SNAPSHOT_FORMAT = 1  # of metadata_snapshot(); a kept snapshot of another format is read again


class HubSpotSettings(StrictModel):
    host: WebAddress = "https://api.hubapi.com"
    token_env: str | None = None
    client_id: str | None = None
    client_secret_env: str | None = None
    refresh_token_env: str | None = None
    search_lag_seconds: float = 10.0
    batch_records: int = 1000
    timeout_seconds: float = 60.0
    search_rate_per_second: float = 5.0  # HubSpot's search limit per account
    archived_every_minutes: float = 60.0  # how stale a delete may be; 0: list archived every run
    fast_retries: bool = False  # tests and the demo: the same retry decisions with tiny waits
    roles: dict[str, str] = {}
    team_regions: dict[str, str] = {}
    portal_id: int | None = None  # the HubSpot account id: write-back's dry run links records
    app_url: WebAddress = "https://app.hubspot.com"  # app-eu1.hubspot.com for EU accounts

    @model_validator(mode="after")
    def _one_auth(self) -> HubSpotSettings:
        oauth = (self.client_id, self.client_secret_env, self.refresh_token_env)
        if self.token_env and any(oauth):
            raise ValueError("give token_env (private app) or the OAuth keys, not both")
        if not self.token_env and not all(oauth):
            raise ValueError(
                'give token_env = "VAR" for a private app, or client_id, '
                "client_secret_env and refresh_token_env for OAuth"
            )
        return self


class HubSpotConnector:
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
    options_model: ClassVar[type[HubSpotSettings]] = HubSpotSettings
    type_name: ClassVar[str] = "hubspot"
    value_codec: ClassVar[ValueCodec] = CODEC

    @staticmethod
    def reports_daily_limit(options: Mapping[str, Any]) -> bool:
        """Private apps get X-HubSpot-RateLimit-Daily with each answer; OAuth apps do not."""
        return not options.get("client_id")

    def __init__(self, name: str, options: dict[str, Any]) -> None:
        self.name = name
        self.settings = validate_model(HubSpotSettings, options, prefix=f"sources.{name}")
        key = f"sources.{name}"
        s = self.settings
        token = read_secret(s.token_env, key=f"{key}.token_env") if s.token_env else None
        grant = None
        if s.client_id:
            grant = OAuthGrant(
                client_id=s.client_id,
                client_secret=read_secret(
                    s.client_secret_env or "", key=f"{key}.client_secret_env"
                ),
                refresh_token=read_secret(
                    s.refresh_token_env or "", key=f"{key}.refresh_token_env"
                ),
            )
        policy = fast_policy() if s.fast_retries else RetryPolicy()
        self.client = HubSpotClient(
            host=s.host,
            token=token,
            grant=grant,
            policy=policy,
            timeout_seconds=s.timeout_seconds,
            search_rate=s.search_rate_per_second,
        )
        self._fields: list[FieldInfo] | None = None
        self._context: mappers.MappingContext | None = None
        self._stages: list[Row] | None = None
        self._pipeline_results: list[dict[str, Any]] | None = None

    # -- the contract ---------------------------------------------------------------------------
    def stream_table(self) -> StreamTable:
        searched = [
            Stream(
                StreamSpec(
                    t,
                    ENTITIES[t],
                    cursor_field=MODIFIED_PROPERTY.get(t, DEFAULT_MODIFIED),
                    primary_key="hs_object_id",
                    lag=timedelta(seconds=self.settings.search_lag_seconds),
                ),
                self._read_searched,
            )
            for t in SEARCHED
        ]
        return StreamTable(
            "HubSpot",
            [
                Stream(StreamSpec("owners", ("user",), ReadMode.METADATA), self._read_owners),
                Stream(
                    StreamSpec("pipelines", ("pipeline_stage",), ReadMode.METADATA),
                    self._read_pipelines,
                ),
                *searched,
            ],
            calls=lambda: self.client.calls.total(),
        )

    def streams(self) -> list[StreamSpec]:
        return self.stream_table().specs()

    def read(self, stream: str, cursor: Cursor, *, signpost: datetime) -> Iterator[Page]:
        yield from self.stream_table().read(stream, cursor, signpost)

    def list_ids(self) -> Iterator[tuple[str, list[str]]]:
        reader = StreamReader(self.client, self.context(), ReadOptions(timedelta(0), 0))
        for object_type in SEARCHED:
            for page in reader.list_pages(object_type, archived=False):
                ids = [str(r["id"]) for r in page]
                for entity in ENTITIES[object_type]:
                    yield entity, ids

    def discover(self) -> list[FieldInfo]:
        if self._fields is None:
            self._fields = discover_fields(self.client, SEARCHED)
        return self._fields

    def metadata_snapshot(self) -> dict[str, Any]:
        """The property lists and deal pipelines this run read, to keep until metadata is due."""
        return {
            "format": SNAPSHOT_FORMAT,
            "fields": [asdict(f) for f in self.discover()],
            "pipelines": self._pipelines(),
        }

    def restore_metadata(self, snapshot: Mapping[str, Any]) -> bool:
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            return False
        self._fields = [
            FieldInfo(**{**f, "options": tuple(f["options"])}) for f in snapshot["fields"]
        ]
        self._pipeline_results = list(snapshot["pipelines"])
        self._stages, self._context = None, None
        return True

    def write(self, entity: str, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        if entity not in WRITABLE:
            raise RejectedError(f"HubSpot records of kind {entity!r} cannot hold custom fields")
        return write_batches(self.client, WRITABLE[entity], updates)

    def ensure_fields(self, specs: Sequence[FieldSpec], *, apply: bool) -> list[ProvisionStep]:
        steps = ensure_properties(self.client, specs, WRITABLE, apply=apply)
        if apply:
            self._fields = None  # the definitions changed: the next discover() reads them again
        return steps

    def record_url(self, entity: str, external_id: str) -> str | None:
        """The record's page in HubSpot; None without `portal_id` (the URL needs it)."""
        kind = OBJECT_TYPE_IDS.get(entity)
        if self.settings.portal_id is None or kind is None:
            return None
        return (
            f"{str(self.settings.app_url).rstrip('/')}/contacts/{self.settings.portal_id}"
            f"/record/{kind}/{external_id}"
        )

    def check_credentials(self) -> None:
        """One call that fails with the auth error when the token is wrong (write-back runs)."""
        self.client.call("GET /crm/v3/owners", self.client.owners.get_page_with_http_info, limit=1)

    def check(self) -> list[Problem]:
        problems = probe(self.check_credentials)
        if problems:
            return problems
        body = {"filterGroups": [], "limit": 1, "properties": ["hs_object_id"]}
        problems = unreadable(
            SEARCHED,
            lambda t: self.client.call(
                f"POST /crm/v3/objects/{t}/search",
                self.client.search.do_search_with_http_info,
                t,
                body,
            ),
            "grant read access to {}",
        )
        if self.client.daily_remaining is not None and self.client.daily_remaining < 1000:
            problems.append(
                Problem(
                    f"only {self.client.daily_remaining} API calls left today",
                    "wait for the daily allowance to reset",
                )
            )
        return problems

    def api_usage(self) -> dict[str, int]:
        return dict(self.client.calls)

    def api_allowance(self) -> Allowance:
        """The portal's daily limit and remainder from the last call's X-HubSpot-RateLimit-Daily
        headers (none before the first call, and none ever for OAuth apps)."""
        return Allowance(
            daily_limit=self.client.daily_limit, daily_remaining=self.client.daily_remaining
        )

    def close(self) -> None:
        for api in self.client._apis:
            api.api_client.rest_client.pool_manager.clear()

    # -- helpers ---------------------------------------------------------------------------------
    def context(self) -> mappers.MappingContext:
        if self._context is None:
            custom: dict[str, set[str]] = {}
            for info in self.discover():
                if info.is_custom:
                    custom.setdefault(info.entity, set()).add(info.name)
            stages = {
                row.values["stage"]: mappers.StageInfo(
                    row.values["is_closed"], row.values["is_won"]
                )
                for row in self._pipeline_rows()
            }
            self._context = mappers.MappingContext(
                stages=stages,
                custom={k: frozenset(v) for k, v in custom.items()},
                roles=dict(self.settings.roles),
                team_regions=dict(self.settings.team_regions),
            )
        return self._context

    def _pipelines(self) -> list[dict[str, Any]]:
        """The deal pipelines as HubSpot lists them, read once per connector instance (one run)."""
        if self._pipeline_results is None:
            response = self.client.call(
                "GET /crm/v3/pipelines/deals", self.client.pipelines.get_all_with_http_info, "deals"
            )
            self._pipeline_results = list(response.get("results", []))
        return self._pipeline_results

    def _pipeline_rows(self) -> list[Row]:
        """The deal pipelines' stages."""
        if self._stages is None:
            self._stages = [
                row for pipeline in self._pipelines() for row in mappers.map_stages(pipeline)
            ]
        return list(self._stages)

    def _read_searched(
        self, spec: StreamSpec, cursor: Cursor, signpost: datetime
    ) -> Iterator[Page]:
        reader = StreamReader(
            self.client,
            self.context(),
            ReadOptions(
                lag=spec.lag,
                batch_records=self.settings.batch_records,
                archived_every=timedelta(minutes=self.settings.archived_every_minutes),
            ),
        )
        yield from reader.read(spec.name, cursor, signpost)

    def _read_pipelines(
        self, spec: StreamSpec, cursor: Cursor, signpost: datetime
    ) -> Iterator[Page]:
        yield Page(stream=spec.name, records=self._pipeline_rows(), cursor=None)

    def _read_owners(self, spec: StreamSpec, cursor: Cursor, signpost: datetime) -> Iterator[Page]:
        context = mappers.MappingContext(team_regions=dict(self.settings.team_regions))
        for archived in (False, True):

            def fetch(after: str | None, archived: bool = archived) -> Any:
                return self.client.call(
                    "GET /crm/v3/owners",
                    self.client.owners.get_page_with_http_info,
                    limit=100,
                    archived=archived,
                    **({"after": after} if after else {}),
                )

            name = "owners (archived)" if archived else "owners"
            for response in follow(fetch, next_after, crm="HubSpot", stream=name):
                rows = [mappers.map_owner(o, context) for o in response.get("results", [])]
                yield Page(stream=spec.name, records=rows, cursor=None)
