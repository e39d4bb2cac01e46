"""`kpisync surveys import FILE --source NAME`: NPS and eNPS answers from a survey tool's export.

A file is CSV (a header row; comma, semicolon or tab separated) or JSON (a list of objects, or
{"responses": [...]}); a file without a score or a date column is refused whole. Columns, matched
case-insensitively: `kind` (nps | enps; default nps), `score`, `answered_at` (or `date`),
`respondent` (a contact's, or for eNPS an employee's, email or id), `account` (NPS subject; else
the respondent's account), `team` (eNPS subject; else the employee's team), `id` (the tool's
response id, optional). Persian (U+06F0-06F9) and Arabic-Indic (U+0660-0669) digits become ASCII.

Every row is validated; good rows are upserted by a stable external id, so importing the same file
twice changes nothing, and each bad row is reported with its line number and reason. Without an
`id` column the external id is derived from the row: for NPS from (respondent, subject, time);
for eNPS from (team, time, score, n-th such row in the file), so the employee is never stored,
not even as a hash.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from kpisync.calendars import System, read_day
from kpisync.errors import ConfigError
from kpisync.store.models import Account, Contact, SurveyResponse, User
from kpisync.store.revision import raise_revision
from kpisync.store.upsert import upsert_rows

DIGITS = str.maketrans(
    {**{chr(0x06F0 + i): str(i) for i in range(10)}, **{chr(0x0660 + i): str(i) for i in range(10)}}
)
REQUIRED = ("score", "answered_at")
ALIASES = {
    "date": "answered_at",
    "answered": "answered_at",
    "email": "respondent",
    "response_id": "id",
    "company": "account",
    "subject": "account",
}


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    imported: int = 0  # new answers
    unchanged: int = 0  # answers already present (same external id)
    duplicates: int = 0  # rows repeating an earlier row of the same file
    errors: list[RowError] = field(default_factory=list)
    read_by_setting: int = 0  # dates valid and plausible in both calendars: the setting decided
    notes: list[str] = field(default_factory=list)  # what was cleaned on the way in


@dataclass(frozen=True)
class Directory:
    """Who exists in the source: contacts and users by id and email, and the teams."""

    contacts: dict[str, tuple[str, str | None]]  # id or email -> (contact id, account id)
    users: dict[str, str | None]  # id or email -> team
    teams: set[str]
    accounts: set[str]


def ascii_digits(text: str) -> str:
    return text.translate(DIGITS)


def read_rows(path: Path, notes: list[str] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with normalised keys and values) for every record of the file; a
    header's invisible characters (a zero-width space, a stray BOM) are dropped and named in
    `notes`."""
    if path.is_dir():
        raise ConfigError(
            f"{path} is a folder, not a file",
            hint="give the path of one CSV or JSON export inside it",
        )
    if not path.exists():
        raise ConfigError(f"{path} not found", hint="give the path of a CSV or JSON export")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not UTF-8 text", hint="export it again as CSV UTF-8 (or JSON)"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", hint="check the file's permissions"
        ) from None
    notes = notes if notes is not None else []
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        items = data.get("responses") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ConfigError(
                f"{path}: no list of answers",
                hint='give a list of objects, or {"responses": [...]}',
            )
        if items:
            check_columns(
                path, {key for item in items if isinstance(item, dict) for key in normalise(item)}
            )
        for index, item in enumerate(items, start=1):
            yield index, normalise(item if isinstance(item, dict) else {})
        return
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter(text.partition("\n")[0]))
    try:
        header = reader.fieldnames or []
        notes.extend(invisible_in(name) for name in header if invisible_in(name))
        check_columns(path, set(normalise({name: "" for name in header})))
        for row in reader:
            yield reader.line_num, normalise(row)
    except csv.Error as exc:  # a cell over the csv module's 128 KiB, a NUL byte …
        raise ConfigError(
            f"{path} line {reader.line_num + 1}: not readable as CSV ({exc})",
            hint="a survey export's cells are short text: check that this is "
            "the export, and export it again; nothing was imported",
        ) from None


def delimiter(header: str) -> str:
    """Comma, or the semicolon or tab a spreadsheet in a Polish or Russian locale writes."""
    return max((",", ";", "\t"), key=header.count)


def check_columns(path: Path, columns: set[str]) -> None:
    """A file without a score or a date column is not a survey export: say so once, not per row."""
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        found = ", ".join(sorted(columns)) or "none"
        raise ConfigError(
            f"{path}: no {' or '.join(missing)} column (columns found: {found})",
            hint="a survey export has score and answered_at (or date) columns, "
            "with respondent, and kind, account, team or id where needed",
        )


def visible(text: str) -> str:
    """`text` without control and format characters (zero-width spaces, BOMs, direction marks)."""
    return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))


def invisible_in(name: str) -> str:
    """A note naming the invisible characters of a column name, or ""."""
    hidden = [c for c in name if unicodedata.category(c) in ("Cc", "Cf")]
    if not hidden:
        return ""
    codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in hidden}))
    return f"column {visible(name).strip()!r}: removed invisible characters ({codes})"


def normalise(row: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in row.items():
        if key is None or value is None:
            continue
        name = visible(str(key)).strip().lower().replace(" ", "_")
        out[ALIASES.get(name, name)] = visible(ascii_digits(str(value))).strip()
    return out


def parse_score(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f"score {text!r} is not a whole number from 0 to 10")
    score = int(text)
    if not 0 <= score <= 10:
        raise ValueError(f"score {text!r} is out of range 0\u201310")
    return score


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """An ISO date (local midnight) or date-time (local unless it has an offset), in UTC."""
    if not text:
        raise ValueError("no date")
    cleaned = text.replace("/", "-").replace("Z", "+00:00")
    try:
        if len(cleaned) <= 10:
            moment = datetime.combine(date.fromisoformat(cleaned), time(0))
        else:
            moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"date {text!r} is not an ISO date such as 2025-03-01") from None
    moment = (moment.replace(tzinfo=zone) if moment.tzinfo is None else moment).astimezone(UTC)
    return plausible(moment, text)


def parse_answered(row: dict[str, str], zone: ZoneInfo, setting: System) -> tuple[datetime, bool]:
    """The answer's instant, and whether the calendar setting decided how to read its date: a
    date alone may be Solar Hijri (a `calendar` column, or the Persian setting; see read_day)."""
    text = row.get("answered_at", "")
    if (setting == "gregorian" and not row.get("calendar")) or len(text.strip()) > 10:
        return parse_instant(text, zone), False
    try:
        day, decided = read_day(
            text,
            row.get("calendar", ""),
            setting,
            date(1990, 1, 1),
            datetime.now(UTC).date() + timedelta(days=1),
        )
    except ValueError as exc:
        raise ValueError(f"date {text!r}: {exc}") from None
    moment = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    return plausible(moment, text), decided


def plausible(moment: datetime, text: str) -> datetime:
    """Refuse dates no survey answer can have (e.g. a Persian-calendar year read as Gregorian)."""
    if moment.year < 1990 or moment > datetime.now(UTC) + timedelta(days=1):
        raise ValueError(f"date {text!r} is not plausible (before 1990 or in the future)")
    return moment


def load_directory(connection: Connection, source: str) -> Directory:
    c, u = Contact.__table__, User.__table__  # type: ignore[attr-defined]
    a = Account.__table__  # type: ignore[attr-defined]
    contacts: dict[str, tuple[str, str | None]] = {}
    for external_id, email, account in connection.execute(
        select(c.c.external_id, c.c.email, c.c.account_id).where(
            c.c.source == source, c.c.deleted_at.is_(None)
        )
    ):
        contacts[external_id] = (external_id, account)
        if email:
            contacts[email.lower()] = (external_id, account)
    users: dict[str, str | None] = {}
    for external_id, email, team in connection.execute(
        select(u.c.external_id, u.c.email, u.c.team).where(
            u.c.source == source, u.c.deleted_at.is_(None)
        )
    ):
        users[external_id] = team
        if email:
            users[email.lower()] = team
    teams = {team for team in users.values() if team}
    accounts = set(
        connection.execute(
            select(a.c.external_id).where(a.c.source == source, a.c.deleted_at.is_(None))
        ).scalars()
    )
    return Directory(contacts, users, teams, accounts)


def stable_id(*parts: object) -> str:
    return "imp-" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:40]


def validate(
    row: dict[str, str],
    directory: Directory,
    zone: ZoneInfo,
    seen: Counter[tuple[Any, ...]],
    calendar: System = "gregorian",
) -> dict[str, Any]:
    """The survey_responses values of a good row; ValueError naming the problem otherwise."""
    kind = (row.get("kind") or "nps").lower()
    if kind not in ("nps", "enps"):
        raise ValueError(f"kind {kind!r} is neither nps nor enps")
    score = parse_score(row.get("score", ""))
    answered_at, decided = parse_answered(row, zone, calendar)
    respondent = row.get("respondent", "").lower()
    if kind == "nps":
        if not respondent:
            raise ValueError("no respondent: an NPS answer needs its contact's email or id")
        if respondent not in directory.contacts:
            raise ValueError(f"unknown respondent {row.get('respondent', '')!r} (no such contact)")
        contact, contact_account = directory.contacts[respondent]
        account = row.get("account") or contact_account
        if not account:
            raise ValueError(
                "no subject account: the contact has no account; give the answer an account column"
            )
        if account not in directory.accounts:
            raise ValueError(f"unknown subject account {account!r}")
        external = stable_id("nps", contact, account, answered_at.isoformat())
        values = {"contact_id": contact, "account_id": account, "team": None}
    else:
        if respondent and respondent not in directory.users:
            raise ValueError(f"unknown respondent {row.get('respondent', '')!r} (no such user)")
        team = row.get("team") or (directory.users.get(respondent) if respondent else None)
        if not team:
            raise ValueError(
                "no team: an eNPS answer needs a team column, or a respondent who "
                "is a user with a team"
            )
        if team not in directory.teams:
            raise ValueError(f"unknown team {team!r}")
        identity = ("enps", team, answered_at.isoformat(), score)
        seen[identity] += 1
        external = stable_id(*identity, seen[identity])
        values = {"contact_id": None, "account_id": None, "team": team}
    if row.get("id"):
        external = stable_id(kind, "id", row["id"])
    return values | {
        "external_id": external,
        "kind": kind,
        "score": score,
        "answered_at": answered_at,
        "decided": decided,
    }


def import_surveys(
    engine: Engine,
    path: Path,
    *,
    source: str,
    timezone: str = "UTC",
    calendar: System = "gregorian",
) -> ImportReport:
    """Validate every row of `path`, upsert the good ones into survey_responses, report the rest."""
    zone, report = ZoneInfo(timezone), ImportReport()
    table = SurveyResponse.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with engine.begin() as connection:
        directory = load_directory(connection, source)
        seen: Counter[tuple[Any, ...]] = Counter()
        good: dict[str, dict[str, Any]] = {}
        for line, row in read_rows(path, report.notes):
            try:
                values = validate(row, directory, zone, seen, calendar)
            except ValueError as exc:
                report.errors.append(RowError(line, str(exc)))
                continue
            report.read_by_setting += values.pop("decided")
            if values["external_id"] in good:
                report.duplicates += 1
            raw = row if values["kind"] == "nps" else {}  # an employee's identity is never kept
            good[values["external_id"]] = values | {
                "source": source,
                "custom": {},
                "raw": raw,
                "modified_at": None,
                "synced_at": now,
                "deleted_at": None,
                "origin": f"import:{path.name}",
            }
        existing = set(
            connection.execute(
                select(table.c.external_id).where(
                    table.c.source == source, table.c.external_id.in_(list(good))
                )
            ).scalars()
        )
        if good:
            upsert_rows(connection, table, list(good.values()))
            raise_revision(connection, source, now)
        report.imported = len(set(good) - existing)
        report.unchanged = len(set(good) & existing)
    return report
