"""A real, stock Vtiger CRM 8.2.0 for tests: the shared `bringup.sh` driven from Python.

`RealVtiger` names one installed server (VT_HOME, VT_PORT, VT_DB_PORT from the environment, the
script's defaults otherwise, so two servers coexist) and offers what tests need from it: its
webservice address and admin key, `reset`, `sql` on its MariaDB, custom fields and users made by
Vtiger's own code (`add_field`, `add_user`) and a plain webservice client (`WebService`),
independent of the connector. tests/realvtiger/seed.py fills it with a synthetic org.

Where the release is: `VT_BRINGUP` (the script) or `shared/vtiger/bringup.sh` in a parent folder of
the project; the tarball beside it or at `VT_TARBALL`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TARBALL_NAME = "vtigercrm-8.2.0.tar.xz"
NO_VTIGER_ENV = "KPISYNC_TEST_NO_VTIGER"
# describe type of a layout-editor field -> add-field's type (kpisync's neutral types)
FIELD_TYPES = {
    "string": "Text",
    "number": "Decimal",
    "date": "Date",
    "enumeration": "Picklist",
    "bool": "Checkbox",
}


# Converts a lead as the web UI's Leads > Convert Lead does (modules/Leads/views/
# SaveConvertLead.php): the lead's own conversion mapping fills each new record, then
# vtws_convertlead, from the PHP CLI, as the admin (the webservice's convertlead fails on 8.2).
CONVERT_LEAD_PHP = r"""<?php
chdir(getenv('WWW'));
include_once 'config.php';
require_once 'vendor/autoload.php';
include_once 'includes/main/WebUI.php';
require_once 'include/Webservices/ConvertLead.php';
error_reporting(E_ERROR);
global $current_user, $adb;
$current_user = Users::getActiveAdminUser();
$leadId = $argv[1];
$modules = explode(',', $argv[2]);
$lead = Vtiger_Record_Model::getInstanceById($leadId, 'Leads');
$values = array('transferRelatedRecordsTo' => 'Contacts', 'imageAttachmentId' => '',
  'assignedTo' => vtws_getWebserviceEntityId('Users', $lead->get('assigned_user_id')),
  'leadId' => vtws_getWebserviceEntityId('Leads', $leadId));
foreach ($lead->getConvertLeadFields() as $module => $fields) {
  if (!in_array($module, $modules)) continue;
  $values['entities'][$module] = array('create' => true, 'name' => $module, 'source' => 'CRM');
  foreach ($fields as $field) {
    $values['entities'][$module][$field->getName()] = $field->get('fieldvalue');
  }
}
if (in_array('Potentials', $modules)) {
  $values['entities']['Potentials']['closingdate'] = $argv[3];
  $values['entities']['Potentials']['sales_stage'] = 'Prospecting';
  if (empty($values['entities']['Potentials']['potentialname']))
    $values['entities']['Potentials']['potentialname'] = $lead->get('company');
}
echo json_encode(vtws_convertlead($values, $current_user)), "\n";
"""


class VtigerUnavailable(Exception):
    """The real server cannot be used here; the message says how to provide it."""


def find_bringup() -> Path | None:
    given = os.environ.get("VT_BRINGUP")
    if given:
        return Path(given)
    for folder in ROOT.parents:
        candidate = folder / "shared" / "vtiger" / "bringup.sh"
        if candidate.is_file():
            return candidate
    return None


def release_problem() -> str | None:
    """None when the script and the release tarball are where the tier looks; else one line."""
    script = find_bringup()
    if script is None or not script.is_file():
        return (
            "the real-Vtiger tier needs bringup.sh (shared/vtiger/ beside the project, or "
            "VT_BRINGUP=/path/bringup.sh); set KPISYNC_TEST_NO_VTIGER=1 to deselect the tier"
        )
    tarball = Path(os.environ.get("VT_TARBALL") or script.parent / TARBALL_NAME)
    if not tarball.is_file():
        return (
            f"the real-Vtiger tier needs the Vtiger CRM 8.2.0 release, not found at {tarball}: "
            f"set VT_TARBALL=/path/{TARBALL_NAME}, or KPISYNC_TEST_NO_VTIGER=1 to deselect "
            "the tier"
        )
    return None


def unescape(cell: str) -> str:
    """A value as `mariadb -B` prints it (\\t, \\n, \\\\, \\0 escaped) back to its text."""
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell):
            out.append({"t": "\t", "n": "\n", "\\": "\\", "0": "\0"}.get(cell[i + 1], cell[i + 1]))
            i += 2
        else:
            out.append(cell[i])
            i += 1
    return "".join(out)


class WebService:
    """webservice.php as a test reads and writes it: one user, one session, no retries."""

    def __init__(self, url: str, username: str, access_key: str) -> None:
        self.endpoint = f"{url}/webservice.php"
        self.username = username
        self.key = access_key
        self.http = httpx.Client(timeout=120, trust_env=False)
        self.session = ""
        self.user_id = ""
        self.login()

    def login(self) -> None:
        token = self.call("getchallenge", method="GET", username=self.username)["token"]
        digest = hashlib.md5((token + self.key).encode()).hexdigest()
        result = self.call("login", username=self.username, accessKey=digest)
        self.session, self.user_id = result["sessionName"], result["userId"]

    def envelope(self, operation: str, method: str = "POST", **params: str) -> httpx.Response:
        if operation not in ("getchallenge", "login") and not self.session:
            self.login()
        fields = {"operation": operation, **params}
        if operation not in ("getchallenge", "login"):
            fields["sessionName"] = self.session
        if method == "GET":
            return self.http.get(self.endpoint, params=fields)
        return self.http.post(self.endpoint, data=fields)

    def call(self, operation: str, method: str = "POST", **params: str) -> Any:
        response = self.envelope(operation, method, **params)
        body = response.json()
        if not body.get("success"):
            raise RuntimeError(f"{operation} failed: {body.get('error')}")
        return body["result"]

    def query(self, text: str) -> list[dict[str, Any]]:
        return list(self.call("query", method="GET", query=text))

    def query_all(self, module: str, columns: str = "*") -> list[dict[str, Any]]:
        """Every live record of a module, in id order (pages of 100)."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self.query(f"SELECT {columns} FROM {module} ORDER BY id LIMIT {len(rows)},100;")
            rows += page
            if len(page) < 100:
                return rows

    def describe(self, module: str) -> dict[str, Any]:
        return dict(self.call("describe", method="GET", elementType=module))

    def create(self, module: str, values: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.call("create", elementType=module, element=json.dumps(values, ensure_ascii=False))
        )

    def revise(self, values: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("revise", element=json.dumps(values, ensure_ascii=False)))

    def retrieve(self, ws_id: str) -> dict[str, Any]:
        return dict(self.call("retrieve", method="GET", id=ws_id))

    def delete(self, ws_id: str) -> None:
        self.call("delete", id=ws_id)

    def close(self) -> None:
        self.http.close()


@dataclass
class Seeded:
    """What `seed` made: ws ids by neutral kind and id, users by rep id, cf names by label."""

    ids: dict[tuple[str, int], str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)  # rep id -> 19xNN
    fields: dict[tuple[str, str], str] = field(default_factory=dict)  # (module, label) -> cf_NNN

    def of(self, kind: str) -> list[str]:
        return [ws for (k, _), ws in self.ids.items() if k == kind]


class RealVtiger:
    """One installed stock Vtiger 8.2 (VT_HOME), driven by bringup.sh."""

    username = "admin"

    def __init__(self, script: Path) -> None:
        self.script = script
        self.home = (
            os.environ.get("VT_HOME") or f"{os.environ.get('TMPDIR', '/tmp')}/kpisync-vtiger"
        )
        self.url = ""
        self.access_key = ""
        self._web: WebService | None = None

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "VT_HOME": self.home, **(extra_env or {})}
        done = subprocess.run(
            ["bash", str(self.script), *args], capture_output=True, text=True, env=env, timeout=900
        )
        if check and done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"bringup.sh {args[0]} failed: {last}")
        return done

    def install(self) -> None:
        self.run("install")
        self._read_env()

    def _read_env(self) -> None:
        values = {}
        for line in self.run("env").stdout.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = value
        self.url, self.access_key = values["VTIGER_URL"], values["VTIGER_ACCESS_KEY"]

    def reset(self) -> None:
        if self._web is not None:
            self._web.close()
            self._web = None
        self.run("reset")
        self._read_env()

    def sql(self, query: str) -> list[tuple[str | None, ...]]:
        """Rows of a query on Vtiger's database, every value as text (NULL as None)."""
        done = self.run("sql", "-N", "-B", "--default-character-set=utf8mb4", "-e", query)
        return [
            tuple(None if c == "NULL" else unescape(c) for c in line.split("\t"))
            for line in done.stdout.splitlines()
        ]

    def add_field(
        self,
        module: str,
        label: str,
        kind: str,
        values: list[str] | None = None,
        *,
        length: int | None = None,
    ) -> str:
        """A custom field made by the layout editor's code; its cf name. `kind` is the layout
        editor's type (Text, Decimal, Checkbox, Picklist, Date, ...)."""
        env = {"VT_FIELD_LENGTH": str(length)} if length else None
        args = ["add-field", module, label, kind, *([",".join(values)] if values else [])]
        return self.run(*args, extra_env=env).stdout.strip().splitlines()[-1]

    def add_user(
        self, user_name: str, role: str = "H5", department: str = "", manager: str = ""
    ) -> str:
        """A user saved by Vtiger's own Users::save (2 currency decimals); its 19xNN id."""
        args = ["add-user", user_name, role, department, *([manager] if manager else [])]
        return self.run(*args).stdout.strip().splitlines()[-1]

    def convert_lead(
        self,
        lead: str,
        modules: tuple[str, ...] = ("Accounts", "Contacts"),
        closing: str = "2027-03-31",
    ) -> dict[str, str]:
        """Convert a lead as the web UI does; the ws ids made, by module (and leadId)."""
        script = Path(self.home) / "run" / "kpisync_convert_lead.php"
        script.write_text(CONVERT_LEAD_PHP, encoding="utf-8")
        done = subprocess.run(
            [
                "php",
                "-d",
                "display_errors=stderr",
                str(script),
                lead.partition("x")[2],
                ",".join(modules),
                closing,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "WWW": f"{self.home}/www"},
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"converting {lead} failed: {done.stderr.strip()[-300:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    def user_key(self, user_name: str) -> str:
        return str(
            self.sql(f"SELECT accesskey FROM vtiger_users WHERE user_name='{user_name}'")[0][0]
        )

    def web(self, user_name: str = "admin") -> WebService:
        """A webservice client as `user_name` (the admin's is kept)."""
        if user_name != "admin":
            return WebService(self.url, user_name, self.user_key(user_name))
        if self._web is None:
            self._web = WebService(self.url, "admin", self.access_key)
        return self._web
