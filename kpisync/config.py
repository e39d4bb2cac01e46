"""settings.toml: read once, validated whole, secrets only as references to environment variables.

Layout:

    [kpisync]                 store URL, time zone, corporate currency, calendar, week start,
                              locale (en, or fa: Persian text and digits)
    [sources.<name>]          one table per connector instance; `type` picks the connector,
                              the rest is validated by that connector's own settings model
    [sources.<name>.schedule] optional: when `kpisync run` syncs it

A key that looks like a secret (token, secret, password, key) must be written as `<key>_env = "VAR"`;
a literal value is refused with a message naming the key and the fix. The other tables ([metrics],
[writeback], [report], ...) are checked by their owners, all of them when a command starts
(kpisync.settings_check).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from kpisync.calendars import (
    WEEKDAYS,
    Calendar,
    System,
    calendar_for,
    latin_digits,
    parse_gregorian,
    parse_solar_hijri,
)
from kpisync.errors import ConfigError
from kpisync.settings_file import DEFAULT_PATH, SETTINGS_ENV

_SECRET_KEY = re.compile(r"(^|_)(token|secret|password|passwd|api_key|access_key|private_key)$")
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

Model = TypeVar("Model", bound=BaseModel)


def _web_address(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not a web address such as 'https://crm.example.com'")
    return value


def _readable_file(value: str) -> str:
    if not Path(value).expanduser().is_file():
        raise ValueError(f"{value} is not a file")
    return value


def _any_calendar_day(value: Any) -> Any:
    """A settings date in either calendar: a year before 1700 is Solar Hijri (`1404-01-01`, or
    "۱۴۰۴/۰۱/۰۱" in any digits, is 2025-03-21); Gregorian dates pass as they are."""
    if isinstance(value, date) and not isinstance(value, datetime) and value.year < 1700:
        value = f"{value.year}-{value.month}-{value.day}"
    if isinstance(value, str):
        year = latin_digits(value).strip()[:4]
        if year.isdigit() and int(year) < 1700:
            return parse_solar_hijri(value)
        return parse_gregorian(value)
    return value


WebAddress = Annotated[str, AfterValidator(_web_address)]  # http(s)://host, checked when read
SettingsDate = Annotated[date, BeforeValidator(_any_calendar_day)]  # Gregorian or Solar Hijri
ReadableFile = Annotated[str, AfterValidator(_readable_file)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceCommon(StrictModel):
    """Keys every source table accepts, whatever its connector."""

    purge_check_hours: float = Field(default=168.0, gt=0)


class ScheduleSettings(StrictModel):
    interval_minutes: int | None = Field(default=None, ge=1)
    interval_seconds: float | None = Field(default=None, gt=0)  # short intervals: tests, soak runs
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as error:
                raise ValueError(
                    f"{value!r} is not a crontab line such as '0 6 * * 1-5' ({error})"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSettings:
        given = [k for k in ("interval_minutes", "interval_seconds", "cron") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give one of interval_minutes, interval_seconds or cron, not {given}")
        return self


class CoreSettings(StrictModel):
    store: str = "sqlite:///kpisync.db"
    store_env: str | None = None
    timezone: str = "UTC"
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    calendar: System = "gregorian"  # persian: Solar Hijri weeks, months, quarters, years
    week_start: str | None = None  # default: monday, or saturday under the Persian calendar
    locale: Literal["en", "fa"] = "en"

    @model_validator(mode="before")
    @classmethod
    def _persian_zone(cls, data: Any) -> Any:
        """Under the Persian calendar the zone defaults to Iran's (IANA data, no offsets here)."""
        if isinstance(data, dict) and data.get("calendar") == "persian" and "timezone" not in data:
            return {**data, "timezone": "Asia/Tehran"}
        return data

    @field_validator("week_start")
    @classmethod
    def _weekday(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in WEEKDAYS:
            raise ValueError(f"{value!r} is not a weekday; use one of {', '.join(WEEKDAYS)}")
        return value.lower() if value else value

    @property
    def period_calendar(self) -> Calendar:
        """The calendar KPI periods follow."""
        return calendar_for(self.calendar, self.week_start)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Warsaw'"
            ) from error
        return value


@dataclass(frozen=True)
class SourceConfig:
    """One connector instance: its name, connector type and its still-unvalidated options."""

    name: str
    type: str
    options: dict[str, Any]
    schedule: ScheduleSettings
    common: SourceCommon


@dataclass(frozen=True)
class Settings:
    core: CoreSettings
    sources: dict[str, SourceConfig]
    path: Path | None = None
    extra: dict[str, Any] | None = None  # other top-level tables (metrics, writeback, goals …)

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            raise ConfigError(
                f"no source named {name!r} in settings", hint=f"configured sources: {known}"
            ) from None

    def table(self, name: str) -> dict[str, Any]:
        return dict((self.extra or {}).get(name, {}))


def load_settings(path: Path = DEFAULT_PATH) -> Settings:
    """Read and validate the whole file; every problem names its key and the expected form."""
    if not path.exists():
        raise ConfigError(
            f"{path} not found",
            hint=f"run 'kpisync init' to write a starter file, or name yours with "
            f"--settings PATH or {SETTINGS_ENV}=PATH",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}", hint="fix the line it names"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", hint="save it as UTF-8") from None
    return parse_settings(data, path=path)


def parse_settings(data: dict[str, Any], *, path: Path | None = None) -> Settings:
    refuse_literal_secrets(data, prefix="")
    known = {"kpisync", "sources"}
    core = validate_model(CoreSettings, data.get("kpisync", {}), prefix="kpisync")
    sources: dict[str, SourceConfig] = {}
    raw_sources = data.get("sources", {})
    if not isinstance(raw_sources, dict):
        raise ConfigError("sources: expected tables such as [sources.hubspot_main]")
    for name, table in raw_sources.items():
        sources[name] = parse_source(name, table)
    extra = {key: value for key, value in data.items() if key not in known}
    return Settings(core=core, sources=sources, path=path, extra=extra)


def parse_source(name: str, table: Any) -> SourceConfig:
    key = f"sources.{name}"
    if not _SOURCE_NAME.match(name):
        raise ConfigError(f"{key}: source names are lowercase letters, digits, '_' or '-'")
    if not isinstance(table, dict):
        raise ConfigError(f"{key}: expected a table [{key}]")
    options = dict(table)
    connector_type = options.pop("type", None)
    if not isinstance(connector_type, str) or not connector_type:
        raise ConfigError(f"{key}.type: missing", hint='e.g. type = "hubspot"')
    schedule = validate_model(
        ScheduleSettings, options.pop("schedule", {}), prefix=f"{key}.schedule"
    )
    common_keys = {k: options.pop(k) for k in list(options) if k in SourceCommon.model_fields}
    common = validate_model(SourceCommon, common_keys, prefix=key)
    return SourceConfig(
        name=name, type=connector_type, options=options, schedule=schedule, common=common
    )


def refuse_literal_secrets(data: dict[str, Any], *, prefix: str) -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            refuse_literal_secrets(value, prefix=f"{path}.")
        elif _SECRET_KEY.search(key) and not key.endswith("_env"):
            raise ConfigError(
                f"{path}: secrets may not be written in settings.toml",
                hint=f'put it in an environment variable and write {key}_env = "VARIABLE_NAME"',
            )


def validate_model(model: type[Model], data: Any, *, prefix: str) -> Model:
    """`model` built from `data`, or one ConfigError listing every bad key with its full path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check the spelling against the example settings.toml)"
            problems.append(f"{where}: {message}")
        raise ConfigError("; ".join(problems)) from None
