"""The demo's KPI stage: compute every KPI over the synced store and show the last full quarter."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from kpisync.demo import DemoRun
from kpisync.formats import period_label
from kpisync.logs import muted
from kpisync.texts import localized, translate
from metrics.alerts import log as alerts_log
from metrics.catalogue import REGISTRY
from metrics.commands import shown
from metrics.engine import compute_all
from metrics.options import metric_config
from metrics.periods import period_start
from metrics.snapshots import latest_values


def demo_stage(console: Console, run: DemoRun) -> None:
    context = run.context
    console.rule("KPIs")
    now = run.org.now  # the synthetic org's present
    with console.status("computing every KPI of the catalogue …"), muted(alerts_log.name):
        result = compute_all(context.engine, metric_config(context.settings), now=now)
    console.print(f"computed {result.standing} KPI values (every KPI, period and grain)")
    config, locale = metric_config(context.settings), context.settings.core.locale
    this_quarter = period_start(now.astimezone(config.zone).date(), "quarter", config.calendar)
    quarterly = [v for v in latest_values(context.engine, period="quarter", grain="org")
                 if v.period_start < this_quarter]
    last = max((v.period_start for v in quarterly), default=None)
    title = (f"the whole org, {period_label(last, 'quarter', config.calendar, locale)}" if last
             else "the whole org")
    table = Table("KPI", "value", "from", "left out", title=title)
    rows = [v for v in quarterly if v.period_start == last]
    for value in sorted(rows, key=lambda v: REGISTRY[v.kpi].title):
        table.add_row(translate(REGISTRY[value.kpi].title, locale),
                      shown(value, context.settings.core.currency, locale),
                      localized(_count(value.count), locale),
                      localized(_count(value.excluded), locale))
    console.print(table)
    for alert in result.alerts:  # a running worker logs them and posts them to the webhook
        console.print(f"alert: {alert.message}", markup=False)


def _count(number: int | None) -> str:
    return "-" if number is None else str(number)
