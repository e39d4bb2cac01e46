"""The size of a worker's /metrics answer, plain and gzipped, for three sources with every
series set once (what a scraper fetches every few seconds).

    python benchmarks/metrics_exposition.py
"""

from __future__ import annotations

import urllib.request

from kpisync.health import HealthServer, HealthState, RunMetrics

SOURCES = ("hubspot_main", "salesforce_eu", "vtiger_local")


def main() -> None:
    metrics = RunMetrics()
    for source in SOURCES:
        metrics.runs.labels(source=source, status="succeeded").inc()
        metrics.duration.labels(source=source).observe(12)
        metrics.rows.labels(source=source, change="inserted").inc(100)
        metrics.api_calls.labels(source=source, stage="sync").inc(40)
        metrics.in_progress.labels(source=source).set(0)
        metrics.last_success.labels(source=source).set(1.7e9)
        metrics.failures_in_a_row.labels(source=source).set(0)
        metrics.next_run.labels(source=source).set(1.7e9)
    server = HealthServer(HealthState(worker="w1"), metrics)
    server.start()
    try:
        for name, headers in (("plain", {}), ("gzip", {"Accept-Encoding": "gzip"})):
            request = urllib.request.Request(f"{server.address}/metrics", headers=headers)
            with urllib.request.urlopen(request) as answer:
                size = len(answer.read())
                encoding = answer.headers.get("Content-Encoding") or "identity"
            print(f"{name:6} {size:6d} bytes  (Content-Encoding: {encoding})")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
