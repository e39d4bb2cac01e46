"""Write-back: computed scores onto the CRM's own records, exactly, safely, reversibly.

    options     the [writeback] settings: score -> CRM field per source and object
    rules       the rule settings and the parameters the scores are computed under
    scores      the scores and the SQL over the store giving each record's desired values
    upsell      the configurable upsell rule and its reason in words
    values      value texts per type: encoding, equality across CRM formats, acceptance
    planner     change detection: desired vs last written vs last synced; conflicts
    guard       the target drift guard: field exists, writable, accepts the value; pauses
    outbox      planned writes stored before sending, batched sends, results, audit, state
    runs        one run (resume, plan, send, finish), dry runs, and reverting a run
    provision   `kpisync fields plan|apply`: the managed fields a mapping needs
    control     what holds write-back back: mode off, a plan awaiting approval, reverted fields
    commands    the CLI
    models      the store tables: runs, outbox, audit, values last written, pauses

This module is its public surface for the layers above it (the scheduler's stages, the settings
check, the demo); docs/decisions/import-layers.md.
"""

from writeback.control import control_summary
from writeback.guard import mapped_pauses
from writeback.options import SourcePlan, mapped_sources, source_plan
from writeback.provision import LABEL_PREFIX, provision_fields
from writeback.runs import RunReport, run_writeback
from writeback.scores import SCORES, Score

__all__ = [
    "LABEL_PREFIX",
    "SCORES",
    "RunReport",
    "Score",
    "SourcePlan",
    "control_summary",
    "mapped_pauses",
    "mapped_sources",
    "provision_fields",
    "run_writeback",
    "source_plan",
]
