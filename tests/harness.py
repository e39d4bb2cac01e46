"""The conformance harness: what each CRM's test kit offers, so one suite runs over every connector.

A kit lives in `tests/kit_<crm>.py` and exposes `KIT`, an object with:

    name: str                                    e.g. "hubspot"
    serve(org) -> ContextManager[Served]         its emulator, serving the org over loopback

and `Served` offers:

    emulator                                     the running emulator (knobs, calls, reset_calls)
    connector(**options) -> Connector            a connector on it (fast retries, no search lag)
    settings_file(folder, store_url, **options)  a settings.toml for subprocess runs (`kpisync sync`)
    assert_store_equals_truth(engine)            the store against the emulator's truth, field by field
    change_deals(ids_wanted: int, seed) -> set[str]   amounts changed in the CRM; returns their ids
    delete_deal() -> str                         a deal deleted in the CRM (its API's way); its id
    bad_token_connector() -> Connector           a connector whose credentials the CRM refuses
    bad_credentials() -> dict                    connector options naming a wrong secret
    unreachable() -> dict                        connector options pointing at a closed port
    generous_limits() -> dict                    loosen the emulator's rate limits for long tests;
                                                 returns the connector options that match
    source: str                                  the source name the kit's settings use
"""

from __future__ import annotations

import importlib

CRMS = ("hubspot", "salesforce", "vtiger")


def available_kits() -> list[object]:
    """Every CRM kit present in tests/; a CRM without a kit yet is simply not in the list."""
    kits = []
    for crm in CRMS:
        try:
            module = importlib.import_module(f"tests.kit_{crm}")
        except ModuleNotFoundError as error:
            if error.name != f"tests.kit_{crm}":
                raise
            continue
        kits.append(module.KIT)
    return kits
