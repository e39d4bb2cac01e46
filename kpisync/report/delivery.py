"""E-mailing the report: the scheduler calls `send_report` on the schedule of `[report.email]`.

The message has three parts: a plain-text summary, an HTML body whose charts are PNG images sent
with it (mail clients such as Gmail and Outlook show no inline SVG), and the self-contained HTML
report attached for the full page. The SMTP password comes from the environment variable named by
`report.email.password_env` and is masked in every message kpisync prints.

SMTP failures are translated by one table (first match wins) into the kpisync error tree: problems
a person must fix in settings are ConfigError; a server that could not be reached or answered with
a temporary (4xx) code is TransientError, which the scheduler may retry; a permanent refusal (5xx)
is RejectedError. Nothing here retries by itself: a message that reached DATA may have been
delivered, and a second copy is the scheduler's decision, not this module's.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import Engine

from kpisync.config import Settings
from kpisync.errors import ConfigError, KpisyncError, RejectedError, TransientError
from kpisync.formats import show_value
from kpisync.report.charts import Chart
from kpisync.report.content import Report
from kpisync.report.figures import draw_charts
from kpisync.report.gather import build_report
from kpisync.report.options import EmailSettings, report_settings
from kpisync.report.page import inline_figures, render_html
from kpisync.report.raster import chart_png
from kpisync.report.svg import el
from kpisync.secrets import mask, read_secret

log = logging.getLogger("kpisync.report")

SMTP_ERRORS: tuple[tuple[type[BaseException], type[KpisyncError], str], ...] = (
    (
        smtplib.SMTPAuthenticationError,
        ConfigError,
        "check report.email.username and the password in the variable report.email.password_env names",
    ),
    (smtplib.SMTPRecipientsRefused, ConfigError, "check report.email.recipients"),
    (smtplib.SMTPSenderRefused, ConfigError, "check report.email.sender"),
    (
        smtplib.SMTPNotSupportedError,
        ConfigError,
        "the server does not offer what report.email.security asks for (STARTTLS or login)",
    ),
    (ssl.SSLError, ConfigError, "check report.email.host, port and security (starttls or ssl)"),
    (smtplib.SMTPServerDisconnected, TransientError, "the server closed the connection; try again"),
    (TimeoutError, TransientError, "the server did not answer in time; raise timeout_seconds?"),
    (OSError, TransientError, "check that report.email.host and port are reachable"),
)


def send_report(settings: Settings, engine: Engine, *, now: datetime) -> None:
    """Build the report as of `now` and e-mail it as `[report.email]` says. Raises kpisync errors."""
    options = report_settings(settings)
    email = options.email
    if email is None:
        raise ConfigError(
            "report.email is not configured",
            hint="add a [report.email] table with host, sender and recipients",
        )
    report = build_report(settings, engine, now=now, period=email.period)
    message = compose(report, draw_charts(report), email)
    deliver(message, email)
    log.info("report for %s e-mailed to %d recipients", report.period_label, len(email.recipients))


def compose(report: Report, charts: tuple[Chart, ...], email: EmailSettings) -> EmailMessage:
    """The message: text summary, HTML with PNG charts, and the self-contained page attached."""
    message = EmailMessage()
    message["Subject"] = email.subject.replace("{title}", report.title).replace(
        "{period}", report.period_label
    )
    message["From"] = email.sender
    message["To"] = ", ".join(email.recipients)
    message.set_content(summary(report))
    cids = {chart.name: make_msgid(domain="kpisync.report") for chart in charts}
    images = {
        chart.name: el("img", src=f"cid:{cids[chart.name][1:-1]}", alt=chart.title, width=640)
        for chart in charts
    }
    message.add_alternative(render_html(report, images, sparklines=False), subtype="html")
    html_part = message.get_payload()[1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    for chart in charts:
        html_part.add_related(
            chart_png(chart, zoom=1.5),
            maintype="image",
            subtype="png",
            cid=cids[chart.name],
            filename=f"{chart.name}.png",
        )
    page = render_html(report, inline_figures(charts))
    message.add_attachment(
        page.encode("utf-8"),
        maintype="text",
        subtype="html",
        filename=f"report-{report.period_start.isoformat()}.html",
    )
    return message


def summary(report: Report) -> str:
    """The plain-text part: the tiles and goals, one line each."""
    lines = [f"{report.title} — {report.period_label} ({report.period} to date)", ""]
    for series in report.tiles:
        current = series.current
        value = current.value if current else None
        lines.append(f"{series.title}: {show_value(value, series.unit, report.currency)}")
    if report.goals:
        lines.append("")
    for goal in report.goals:
        s = goal.status
        lines.append(
            f"Goal {s.goal.name}: {s.status}, "
            f"{show_value(s.actual, goal.unit, report.currency)} of "
            f"{show_value(s.goal.target, goal.unit, report.currency)}"
        )
    lines += ["", "The full report with charts is attached as an HTML file."]
    return "\n".join(lines) + "\n"


def deliver(message: EmailMessage, email: EmailSettings) -> None:
    """Send `message` over SMTP; every failure becomes one kpisync error with a hint."""
    password = (
        read_secret(email.password_env, key="report.email.password_env")
        if email.password_env
        else None
    )
    try:
        with connect(email) as smtp:
            if email.username and password is not None:
                smtp.login(email.username, password)
            smtp.send_message(message, from_addr=None, to_addrs=list(email.recipients))
    except (smtplib.SMTPException, OSError) as error:
        raise translate(error) from None


def connect(email: EmailSettings) -> smtplib.SMTP:
    if email.security == "ssl":
        return smtplib.SMTP_SSL(
            email.host,
            email.port,
            timeout=email.timeout_seconds,
            context=ssl.create_default_context(),
        )
    smtp = smtplib.SMTP(email.host, email.port, timeout=email.timeout_seconds)
    if email.security == "starttls":
        try:
            smtp.starttls(context=ssl.create_default_context())
        except (smtplib.SMTPException, OSError):
            smtp.close()
            raise
    return smtp


def translate(error: BaseException) -> KpisyncError:
    text = mask(str(error) or type(error).__name__)
    if isinstance(error, smtplib.SMTPResponseException) and not isinstance(
        error, smtplib.SMTPAuthenticationError | smtplib.SMTPSenderRefused
    ):
        kind: type[KpisyncError] = TransientError if 400 <= error.smtp_code < 500 else RejectedError
        return kind(
            f"the mail server refused the report: {text}", hint="see the server's reply above"
        )
    for caught, kind, hint in SMTP_ERRORS:
        if isinstance(error, caught):
            return kind(f"could not e-mail the report: {text}", hint=hint)
    return TransientError(f"could not e-mail the report: {text}")
