"""Checks of the store against the settings' roles, where a wrong role gives plausible numbers.

Each check logs one warning that names the setting and the fix; the values are still computed as
the settings say, because the admin, not kpisync, knows what the CRM's field means.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, func, select

from kpisync.store.models import Account, Deal
from metrics.options import MetricConfig
from metrics.staging import segment_keys

log = logging.getLogger("kpisync.metrics.sanity")
ENOUGH = 5  # won deals with a margin before a pattern means anything


def check_roles(connection: Connection, config: MetricConfig) -> list[str]:
    """The warnings for `config`'s roles over the store; each is also logged."""
    warnings = [
        w for w in (margin_kind(connection, config), segment_field(connection, config)) if w
    ]
    for warning in warnings:
        log.warning(warning)
    return warnings


def margin_kind(connection: Connection, config: MetricConfig) -> str | None:
    """A margin read as money that is always a share, or read as a share that exceeds the amount."""
    d = Deal.__table__  # type: ignore[attr-defined]
    with_margin = (
        d.c.deleted_at.is_(None),
        d.c.is_won.is_(True),
        d.c.margin.is_not(None),
        d.c.amount.is_not(None),
        d.c.amount != 0,
    )
    count, largest_margin, largest_amount = connection.execute(
        select(func.count(), func.max(func.abs(d.c.margin)), func.max(func.abs(d.c.amount))).where(
            *with_margin
        )
    ).one()
    if count < ENOUGH:
        return None
    kind = config.metrics.roles.margin
    if kind == "amount" and largest_margin <= 1 < largest_amount:
        return (
            f'metrics.roles.margin is "amount", but the margins of all {count} won deals are '
            f"between 0 and 1, which reads as a share of the amount: the margin KPI will be "
            f'near 0%. If the CRM field holds a share, set margin = "fraction" in '
            f"[metrics.roles]"
        )
    if kind == "fraction" and largest_margin > 1:
        return (
            f'metrics.roles.margin is "fraction", but some won deals have a margin of '
            f"{largest_margin:,.2f}, more than their whole amount: if the CRM field holds "
            f'money, set margin = "amount" in [metrics.roles]'
        )
    return None


def segment_field(connection: Connection, config: MetricConfig) -> str | None:
    """A segment field that no account holds (by name or label): no segment figures at all."""
    name = config.metrics.roles.segment_field
    a = Account.__table__  # type: ignore[attr-defined]
    if (
        not name
        or not connection.execute(
            select(func.count()).select_from(a).where(a.c.deleted_at.is_(None))
        ).scalar()
    ):
        return None
    held = connection.execute(
        select(func.count())
        .select_from(a)
        .where(a.c.deleted_at.is_(None), a.c.custom[name].as_string().is_not(None))
    ).scalar()
    known = held or segment_keys(connection, name)
    if known:
        return None
    return (
        f'metrics.roles.segment_field is "{name}", but no account field has that name or '
        f"label: segment figures will be empty. Set it to the account field's name or label "
        f"as the CRM shows it (`kpisync discover SOURCE` lists them)"
    )
