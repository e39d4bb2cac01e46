"""Which CRM field could play each role no standard field covers: the ranking behind `kpisync discover`.

A *role* is a meaning the KPIs need that CRMs keep in no fixed place: loss reason, competitor,
deal type, margin, region, rep start date (a field, named in `sources.<name>.roles`), and the
qualified lead statuses, former-customer account types and required stages (values of a field the
connector always reads, listed in `[metrics.roles]`).

Each role is a `RoleSpec`: the record it lives on, words its name or label carries, the vendors'
standard names, the field types that fit, and picklist values that give it away (a picklist with
`upgrade` and `renewal` is a deal type whatever its label says). `suggest_roles` ranks the
discovered fields of one source against every spec and marks the one configured today;
`roles_line` and `metric_roles_lines` turn the best candidates into TOML an admin can paste.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from rich.markup import escape
from rich.table import Table

from kpisync.connector import FieldInfo

STRONG, WEAK = 40, 20  # points for a phrase in the name or label; a confident pick needs STRONG
STANDARD, FIXED, TYPE_FIT, OPTION, OPTION_CAP = 30, 50, 15, 15, 45
KINDS = {  # vendor type names -> the kind a role asks for
    "string": "text",
    "text": "text",
    "textarea": "text",
    "enumeration": "choice",
    "picklist": "choice",
    "multipicklist": "choice",
    "combobox": "choice",
    "number": "number",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "integer": "number",
    "decimal": "number",
    "date": "date",
    "datetime": "date",
}
OBJECTS = {  # connector type -> canonical record -> the vendor object discover names
    "hubspot": {"deal": "deals", "account": "companies", "lead": "contacts", "user": "owners"},
    "salesforce": {"deal": "Opportunity", "account": "Account", "lead": "Lead", "user": "User"},
    "vtiger": {"deal": "Potentials", "account": "Accounts", "lead": "Leads", "user": "Users"},
}
ANY_OBJECTS = {
    "deal": {"deal", "deals", "opportunity", "opportunities", "potentials"},
    "account": {"account", "accounts", "company", "companies", "organizations"},
    "lead": {"lead", "leads"},
    "user": {"user", "users", "owners"},
}
FIELD_ROLES = {  # connector type -> roles its settings accept in `roles = {...}`
    "hubspot": frozenset({"deal_type", "loss_reason", "competitor", "margin", "account_region"}),
    "salesforce": frozenset(
        {"deal_type", "loss_reason", "competitor", "margin", "account_region", "user_start_date"}
    ),
    "vtiger": frozenset({"deal_type", "loss_reason", "competitor", "margin", "account_region"}),
}
DEFAULTS = {  # connector type -> role -> the field its mapper reads when the role is not set
    "hubspot": {
        "deal_type": "dealtype",
        "loss_reason": "closed_lost_reason",
        "competitor": "competitor",
        "margin": "margin",
    },
    "salesforce": {
        "deal_type": "Type",
        "loss_reason": "Loss_Reason__c",
        "competitor": "Competitor__c",
        "margin": "Margin__c",
        "user_start_date": "Start_Date__c",
    },
    "vtiger": {"deal_type": "opportunity_type"},
}
FIXED_FIELDS = {  # connector type -> value role -> the field the connector always reads for it
    "hubspot": {
        "qualified_lead_statuses": "hs_lead_status",
        "former_customer_types": "type",
        "required_stages": "dealstage",
    },
    "salesforce": {
        "qualified_lead_statuses": "Status",
        "former_customer_types": "Type",
        "required_stages": "StageName",
    },
    "vtiger": {
        "qualified_lead_statuses": "leadstatus",
        "former_customer_types": "accounttype",
        "required_stages": "sales_stage",
    },
}


@dataclass(frozen=True)
class RoleSpec:
    key: str  # the settings key: sources.<name>.roles.<key>, or metrics.roles.<key>
    title: str
    record: str  # deal | account | lead | user
    words: tuple[tuple[str, int], ...]  # (phrase in name or label, points); the best one counts
    kinds: tuple[str, ...]  # field kinds that fit, best first
    standard: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # vendor standard names
    hints: tuple[str, ...] = ()  # picklist values that show the role
    stop: tuple[str, ...] = ()  # words that disqualify a value (`pre qualified`)
    of_values: bool = False  # the role lists values of a fixed field, in [metrics.roles]
    paste_values: bool = True  # suggest those values (required stages are the admin's call)
    all_values: bool = False  # every value not stopped fits: values list, but prove nothing


SPECS = (
    RoleSpec(
        "loss_reason",
        "loss reason",
        "deal",
        (
            ("loss reason", STRONG),
            ("lost reason", STRONG),
            ("reason lost", STRONG),
            ("closed lost", WEAK),
            ("reason", WEAK),
        ),
        ("choice", "text"),
        {"hubspot": ("closed_lost_reason",)},
        hints=("price", "no decision", "competitor", "timing", "budget"),
    ),
    RoleSpec(
        "competitor",
        "competitor",
        "deal",
        (("competitor", STRONG), ("competition", STRONG), ("lost to", STRONG), ("rival", WEAK)),
        ("text", "choice"),
    ),
    RoleSpec(
        "deal_type",
        "deal type (upgrade, cross-sell, renewal)",
        "deal",
        (
            ("deal type", STRONG),
            ("opportunity type", STRONG),
            ("deal category", STRONG),
            ("business type", STRONG),
            ("category", WEAK),
            ("type", WEAK),
            ("kind", WEAK),
        ),
        ("choice", "text"),
        {"hubspot": ("dealtype",), "salesforce": ("Type",), "vtiger": ("opportunity_type",)},
        hints=("upgrade", "cross sell", "crosssell", "renewal", "upsell", "expansion"),
    ),
    RoleSpec(
        "margin",
        "margin or cost",
        "deal",
        (
            ("margin", STRONG),
            ("gross profit", STRONG),
            ("profit", STRONG),
            ("cost", STRONG),
            ("cogs", STRONG),
        ),
        ("number",),
    ),
    RoleSpec(
        "account_region",
        "region or territory",
        "account",
        (
            ("region", STRONG),
            ("territory", STRONG),
            ("sales area", STRONG),
            ("area", WEAK),
            ("zone", WEAK),
            ("country", 15),
            ("state", 5),
        ),
        ("choice", "text"),
    ),
    RoleSpec(
        "user_start_date",
        "rep start date",
        "user",
        (
            ("start date", STRONG),
            ("hire date", STRONG),
            ("hired", STRONG),
            ("joined", STRONG),
            ("employment start", STRONG),
            ("onboarded", WEAK),
            ("start", WEAK),
        ),
        ("date",),
    ),
    RoleSpec(
        "qualified_lead_statuses",
        "qualified lead statuses",
        "lead",
        (("lead status", STRONG), ("status", WEAK), ("lifecycle stage", WEAK)),
        ("choice",),
        {
            "hubspot": ("hs_lead_status", "lifecyclestage"),
            "salesforce": ("Status",),
            "vtiger": ("leadstatus",),
        },
        hints=("qualified", "converted", "open deal", "salesqualifiedlead", "sql"),
        stop=("pre", "not", "un", "dis", "junk", "marketing"),
        of_values=True,
    ),
    RoleSpec(
        "former_customer_types",
        "customer status for churn",
        "account",
        (
            ("customer status", STRONG),
            ("account type", STRONG),
            ("account status", STRONG),
            ("type", WEAK),
            ("status", WEAK),
        ),
        ("choice",),
        {"hubspot": ("type",), "salesforce": ("Type",), "vtiger": ("accounttype",)},
        hints=(
            "former customer",
            "former",
            "churned",
            "ex customer",
            "lost customer",
            "cancelled",
            "canceled",
        ),
        of_values=True,
    ),
    RoleSpec(
        "required_stages",
        "required stages",
        "deal",
        (("deal stage", STRONG), ("sales stage", STRONG), ("stage", WEAK)),
        ("choice",),
        {"hubspot": ("dealstage",), "salesforce": ("StageName",), "vtiger": ("sales_stage",)},
        stop=("closed", "won", "lost"),
        of_values=True,
        paste_values=False,
        all_values=True,
    ),
)


@dataclass(frozen=True)
class Candidate:
    entity: str
    name: str
    label: str
    score: int
    why: str
    setting: str  # what to write in settings to pick it (Vtiger custom fields go by label)
    values: tuple[str, ...] = ()  # its picklist values that fit the role
    configured: bool = False


@dataclass(frozen=True)
class RoleSuggestion:
    role: str
    title: str
    setting: (
        str  # where it is configured, e.g. "roles.loss_reason" or "metrics.roles.required_stages"
    )
    current: str  # what applies today, in words
    supported: bool  # False: this connector takes no setting for the role
    candidates: tuple[Candidate, ...]  # best first
    current_found: bool = True  # False: the configured field is not on the record

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def words_of(text: str) -> str:
    """`Loss_Reason__c`, `cf_864`, `closedLostReason` -> spaced lowercase words."""
    text = re.sub(r"__c$", "", text)
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def says(text: str, phrase: str) -> bool:
    spaced = f" {words_of(text)} "
    return f" {phrase} " in spaced or phrase.replace(" ", "") in spaced.split()


def kind_of(info: FieldInfo) -> str | None:
    return KINDS.get(info.type.lower())


def on_record(info: FieldInfo, spec: RoleSpec, connector_type: str) -> bool:
    named = OBJECTS.get(connector_type, {}).get(spec.record)
    if named is not None:
        return info.entity == named
    return info.entity.lower() in ANY_OBJECTS[spec.record]


def fitting_values(info: FieldInfo, spec: RoleSpec) -> tuple[str, ...]:
    return tuple(
        o
        for o in info.options
        if (spec.all_values or any(says(o, h) for h in spec.hints))
        and not any(says(o, s) for s in spec.stop)
    )


def score_field(
    info: FieldInfo, spec: RoleSpec, connector_type: str, setting: str
) -> Candidate | None:
    """How well one field fits one role, with the reasons in words; None when it does not fit."""
    kind = kind_of(info)
    if kind not in spec.kinds:
        return None
    points, why = 0, []
    if info.name == FIXED_FIELDS.get(connector_type, {}).get(spec.key):
        points += FIXED
        why.append("the field kpisync reads for it")
    elif info.name == DEFAULTS.get(connector_type, {}).get(spec.key):
        points += STANDARD
        why.append("read when the role is not set")
    elif info.name in spec.standard.get(connector_type, ()):
        points += STANDARD
        why.append(f"{connector_type} standard field")
    matched = max(
        ((p, w) for p, w in spec.words if says(info.name, p) or says(info.label, p)),
        key=lambda pw: pw[1],
        default=None,
    )
    if matched:
        points += matched[1]
        why.append(f"named '{matched[0]}'")
    values = fitting_values(info, spec)
    proof = () if spec.all_values else values
    if points == 0 and len(proof) < 2:
        return None  # one matching value alone is chance (`Proposal/Price Quote` is no loss reason)
    points += min(OPTION * len(proof), OPTION_CAP)
    if values:
        why.append("values " + ", ".join(values[:4]) + (" …" if len(values) > 4 else ""))
    points += TYPE_FIT if kind == spec.kinds[0] else TYPE_FIT // 3
    why.append(f"{info.type} field")
    return Candidate(info.entity, info.name, info.label, points, "; ".join(why), setting, values)


def setting_for(info: FieldInfo, fields: Sequence[FieldInfo], connector_type: str) -> str:
    """Vtiger settings name custom fields by label (cf numbers differ per install), unless shared."""
    if connector_type != "vtiger" or not info.is_custom:
        return info.name
    same = [f for f in fields if f.entity == info.entity and f.label.lower() == info.label.lower()]
    return info.label if len(same) == 1 else info.name


def is_current(candidate: Candidate, current: str | None) -> bool:
    if not current:
        return False
    wanted = current.strip().lower()
    return wanted in {candidate.name.lower(), candidate.setting.lower()}


def suggest_roles(
    connector_type: str,
    fields: Sequence[FieldInfo],
    source_roles: Mapping[str, str],
    metric_roles: Mapping[str, Sequence[str]],
    *,
    top: int = 3,
) -> list[RoleSuggestion]:
    """Every role's best candidates among `fields`, the configured one marked and always kept."""
    supported = FIELD_ROLES.get(connector_type, frozenset(s.key for s in SPECS if not s.of_values))
    out = []
    for spec in SPECS:
        if spec.of_values:
            field_now = FIXED_FIELDS.get(connector_type, {}).get(spec.key)
            current = ", ".join(metric_roles.get(spec.key, ())) or "(none)"
            setting, is_supported = f"metrics.roles.{spec.key}", True
        else:
            field_now = source_roles.get(spec.key) or DEFAULTS.get(connector_type, {}).get(spec.key)
            current = source_roles.get(spec.key) or (
                f"{field_now} (default)" if field_now else "(not set)"
            )
            setting, is_supported = f"roles.{spec.key}", spec.key in supported
        ranked = []
        for info in fields:
            if not on_record(info, spec, connector_type):
                continue
            scored = score_field(
                info, spec, connector_type, setting_for(info, fields, connector_type)
            )
            if scored is not None:
                ranked.append(scored)
        ranked.sort(key=lambda c: (-c.score, c.name))
        marked = [replace(c, configured=is_current(c, field_now)) for c in ranked]
        shown = marked[:top] + [c for c in marked[top:] if c.configured]
        found = not field_now or any(
            on_record(f, spec, connector_type)
            and field_now.lower()
            in {f.name.lower(), setting_for(f, fields, connector_type).lower()}
            for f in fields
        )
        out.append(
            RoleSuggestion(
                spec.key, spec.title, setting, current, is_supported, tuple(shown), found
            )
        )
    return out


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def confident(candidate: Candidate | None) -> bool:
    return (
        candidate is not None and candidate.score >= STRONG + TYPE_FIT // 3
    )  # a strong name that fits


def chosen_roles(
    suggestions: Sequence[RoleSuggestion], source_roles: Mapping[str, str]
) -> dict[str, str]:
    """Roles to configure: settings kept where they name a field found, else the confident best."""
    chosen = dict(source_roles)
    for s in suggestions:
        if not s.supported or s.setting.startswith("metrics."):
            continue
        if s.role in source_roles and s.current_found:
            continue  # an admin's choice of an existing field stands
        if s.best is not None and confident(s.best):
            chosen[s.role] = s.best.setting
        elif not s.current_found:
            chosen.pop(s.role, None)
    return chosen


def roles_line(suggestions: Sequence[RoleSuggestion], source_roles: Mapping[str, str]) -> str:
    """The `roles = {...}` line for the source's table; roles this page knows nothing of are kept."""
    pairs = ", ".join(
        f"{toml_key(k)} = {toml_string(v)}"
        for k, v in chosen_roles(suggestions, source_roles).items()
    )
    return f"roles = {{ {pairs} }}" if pairs else "roles = {}"


def metric_roles_lines(
    suggestions: Sequence[RoleSuggestion], metric_roles: Mapping[str, Sequence[str]]
) -> list[str]:
    """`[metrics.roles]` lines adding the best field's fitting values the settings do not cover."""
    lines = []
    pasted = {s.key for s in SPECS if s.of_values and s.paste_values}
    for s in suggestions:
        best = s.best
        if s.role not in pasted or best is None or not best.configured:
            continue
        now = list(metric_roles.get(s.role, ()))
        known = {v.lower() for v in now}
        new = [v for v in best.values if v.lower() not in known]
        if new:
            lines.append(f"{s.role} = [{', '.join(toml_string(v) for v in now + new)}]")
    return ["[metrics.roles]", *lines] if lines else []


def describe_candidate(candidate: Candidate) -> str:
    label = f" '{candidate.label}'" if candidate.label and candidate.label != candidate.name else ""
    mark = "[green]✓ current[/] " if candidate.configured else ""
    return f"{mark}{escape(candidate.entity)}.{escape(candidate.name)}{escape(label)} — {escape(candidate.why)}"


def suggestions_table(suggestions: Sequence[RoleSuggestion]) -> Table:
    """One row per role: where it is set, what applies today, the best candidates and why."""
    table = Table("role", "setting", "current", "best candidates (why)", title="Suggested roles")
    for s in suggestions:
        if not s.supported:
            current = "not read by this connector"
        else:
            current = escape(s.current) + ("" if s.current_found else " [red](no such field)[/]")
        lines = [describe_candidate(c) for c in s.candidates] or ["no candidate"]
        table.add_row(s.title, s.setting, current, "\n".join(lines))
    return table
