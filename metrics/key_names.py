"""Names to show for the keys of the rep and account grains, which are the CRM's record ids."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select

from kpisync.store.models import Account, User
from metrics.declaration import KpiValue

ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
USERS = User.__table__  # type: ignore[attr-defined]
KeyNames = dict[tuple[str, str], str]  # (grain, key) -> a rep's or an account's name


def key_names(engine: Engine, values: Iterable[KpiValue]) -> KeyNames:
    """(grain, key) -> the rep's or the account's name, for the keys that have one."""
    keys: dict[str, set[str]] = {"rep": set(), "account": set()}
    for value in values:
        if value.grain in keys:
            keys[value.grain].add(value.key)
    reps = rep_names(engine, sorted(keys["rep"]))
    names = {("rep", key): name for key, (name, _team) in reps.items()}
    names.update(
        (("account", key), name)
        for key, name in account_names(engine, sorted(keys["account"])).items()
    )
    return {slot: name for slot, name in names.items() if name and name != slot[1]}


def account_names(engine: Engine, keys: list[str]) -> dict[str, str]:
    """Account id -> name, for the live accounts among `keys` that have a name."""
    out: dict[str, str] = {}
    with engine.connect() as connection:
        for begin in range(0, len(keys), 500):
            query = (
                select(ACCOUNTS.c.external_id, ACCOUNTS.c.name)
                .where(
                    ACCOUNTS.c.external_id.in_(keys[begin : begin + 500]),
                    ACCOUNTS.c.deleted_at.is_(None),
                    ACCOUNTS.c.name.is_not(None),
                )
                .order_by(ACCOUNTS.c.source)
            )
            for row in connection.execute(query):
                out.setdefault(row.external_id, row.name)
    return out


def rep_names(engine: Engine, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    """Owner id -> (name, team) for the live users among `keys`; the id stands in for no name."""
    out: dict[str, tuple[str, str | None]] = {}
    with engine.connect() as connection:
        for begin in range(0, len(keys), 500):
            chunk = keys[begin : begin + 500]
            query = (
                select(USERS.c.external_id, USERS.c.name, USERS.c.team)
                .where(USERS.c.external_id.in_(chunk), USERS.c.deleted_at.is_(None))
                .order_by(USERS.c.source)
            )
            for row in connection.execute(query):
                out.setdefault(row.external_id, (row.name or row.external_id, row.team))
    return out
