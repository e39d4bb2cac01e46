"""The upsell flag: a rule from settings (`[writeback.upsell]`) and its reason in words.

Every condition switched on must hold. The reason names them all when the flag is up, and the
first that failed when it is not, in words a rep reads on the account: "Promoter by the latest NPS
answer (account NPS 60 over the last 365 days), activity in the last 30 days, won a deal before,
no open upgrade deal". Reasons
hold no day counts that change daily, so an unchanged account is not rewritten every day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from writeback.rules import ScoreParams


def upsell_of(
    nps: int | None, category: str | None, row: Mapping[str, Any], params: ScoreParams
) -> tuple[bool, str]:
    """(flag, reason) for one account from its NPS, category and activity and deal counts."""
    rule = params.rules.upsell
    window = params.metrics.metrics.nps_window_days
    checks: list[tuple[bool, str, str]] = []  # (holds, words when it holds, words when not)
    if rule.promoter:
        account = f"account NPS {nps} over the last {window} days"
        checks.append(
            (
                category == "promoter",
                f"promoter by the latest NPS answer ({account})",
                f"not a promoter by the latest NPS answer ({account})"
                if nps is not None
                else f"no NPS answer in the last {window} days",
            )
        )
    if rule.active_within_days:
        days = rule.active_within_days
        last = row["last_activity"]
        recent = last is not None and last >= params.as_of - timedelta(days=days)
        checks.append(
            (recent, f"activity in the last {days} days", f"no activity in the last {days} days")
        )
    if rule.won_before:
        checks.append(((row["won"] or 0) > 0, "won a deal before", "no won deal yet"))
    if rule.no_open_upgrade:
        checks.append(
            (
                (row["open_upgrades"] or 0) == 0,
                "no open upgrade deal",
                "an upgrade deal is already open",
            )
        )
    if not checks:
        return False, "No upsell conditions are configured"
    failed = [when_not for holds, _, when_not in checks if not holds]
    if failed:
        return False, f"Not a candidate: {failed[0]}"
    reason = ", ".join(when for _, when, _ in checks)
    return True, reason[0].upper() + reason[1:]
