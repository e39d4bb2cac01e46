"""The real-Vtiger tier: a stock Vtiger CRM 8.2.0 (../shared/vtiger/bringup.sh) behind the tests.

`vtiger_server` (session) installs it (idempotent: an installed VT_HOME is only started) and
`real_vtiger` resets it before each test; one test run at a time holds a server (a lock file in
VT_HOME; a second run waits). VT_HOME, VT_PORT and VT_DB_PORT come from the
environment, so two servers (two VT_HOMEs, two pairs of ports) serve two test runs at once.
Without the release the tier fails with one line saying how to provide it (VT_TARBALL); set
KPISYNC_TEST_NO_VTIGER=1 to deselect it on purpose. `seeded_org` fills the fresh server with a
small synthetic org (Persian text and custom fields included).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.org.generate import generate_org
from emulators.org.model import Org
from tests.realvtiger.seed import seed_org
from tests.realvtiger.server import NO_VTIGER_ENV, RealVtiger, Seeded, find_bringup, release_problem

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(NO_VTIGER_ENV) != "1":
        return
    chosen = [item for item in items if HERE not in Path(str(item.fspath)).parents]
    deselected = [item for item in items if item not in chosen]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = chosen


@pytest.fixture(scope="session")
def vtiger_server() -> Iterator[RealVtiger]:
    problem = release_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    script = find_bringup()
    assert script is not None
    server = RealVtiger(script)
    # One test run at a time per server: another run's reset would pull the CRM from under this
    # one. A second run on the same VT_HOME waits here (give it another VT_HOME and ports instead).
    Path(server.home).mkdir(parents=True, exist_ok=True)
    with open(Path(server.home) / "kpisync-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _installed(server)


def _installed(server: RealVtiger) -> Iterator[RealVtiger]:
    try:
        server.install()
    except RuntimeError as first:
        try:  # an installed server whose database was left broken: back to the snapshot
            server.reset()
        except RuntimeError as error:
            pytest.fail(f"the real Vtiger did not come up: {first}; reset: {error}", pytrace=False)
    yield server


@pytest.fixture
def real_vtiger(vtiger_server: RealVtiger) -> Iterator[RealVtiger]:
    """The server as right after its install (database and files), running."""
    vtiger_server.reset()
    yield vtiger_server


def small_org() -> Org:
    """About 160 records: 4 reps, 9 accounts, 30 contacts, 30 leads, 30 deals, 60 activities."""
    return generate_org(
        seed=5, deals=30, activities_per_deal=2.0, leads_per_deal=1.0, contacts_per_deal=1.0
    )


@pytest.fixture
def seeded_org(real_vtiger: RealVtiger) -> tuple[RealVtiger, Seeded]:
    """A fresh server holding `small_org()` (about 25 s on a 2-core machine). A sync reads up to
    the second before it starts, so the fixture ends once the last record's second is over."""
    seeded = seed_org(real_vtiger, small_org())
    time.sleep(1.1)
    return real_vtiger, seeded
