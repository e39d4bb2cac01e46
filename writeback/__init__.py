"""Write-back: computed scores onto the CRM's own records, exactly, safely, reversibly.

    options     the [writeback] settings: score -> CRM field per source and object; rules
    scores      the scores and the SQL over the store giving each record's desired values
    upsell      the configurable upsell rule and its reason in words
    values      value texts per type: encoding, equality across CRM formats, acceptance
    planner     change detection: desired vs last written vs last synced; conflicts
    guard       the target drift guard: field exists, writable, accepts the value; pauses
    outbox      planned writes stored before sending, batched sends, results, audit, state
    runs        one run (resume, plan, send, finish), dry runs, and reverting a run
    provision   `kpisync fields plan|apply`: the managed fields a mapping needs
    commands    the CLI; demo: the `kpisync demo` stage
    models      the store tables: runs, outbox, audit, values last written, pauses
"""
