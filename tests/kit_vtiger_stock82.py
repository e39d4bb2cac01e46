"""The Vtiger kit in stock-8.2 mode for the conformance suite (see tests/harness.py).

Stock Vtiger 8.2.0 on PHP 8 answers `sync` (and `logout`) with an empty HTTP 500 (crm-api-facts
3.6), so every module falls back to incremental `query` on modifiedtime and deletes come only from
the periodic id comparison. Everything else is the same emulator and the same checks as
tests/kit_vtiger.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emulators.org.model import Org
from emulators.vtiger.emulator import VtigerEmulator
from tests.kit_vtiger import ServedVtiger
from tests.vtiger_env import VtigerEnv


class VtigerStock82Kit:
    deal_stream = "potentials"
    name = "vtiger-stock82"

    @contextmanager
    def serve(self, org: Org, **emulator_options: Any) -> Iterator[ServedVtiger]:
        with VtigerEmulator(org, sync_works=False, **emulator_options) as emulator:
            yield ServedVtiger(VtigerEnv(org, emulator))


KIT = VtigerStock82Kit()
