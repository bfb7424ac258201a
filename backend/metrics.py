"""The counters the app's parts increment, in prometheus-client's default registry.

What is counted as it happens lives here (the areas import it: it imports no area); what is a
state (connections, queue depths, pool use, leadership) is read when ``/metrics`` is scraped,
by ``backend.server.metrics``. Names follow Prometheus' conventions: ``openblynk_`` first, a
unit last, ``_total`` added by the library to every counter.
"""

from __future__ import annotations

from prometheus_client import Counter

LOGIN_FAILURES = Counter(
    "openblynk_login_failures",
    "Console sign-ins refused: wrong e-mail or password, or throttled (too many failures).",
    ["reason"],
)
INGEST_MESSAGES = Counter(
    "openblynk_ingest_messages",
    "Messages the ingest took from the broker, by kind (an uplink of Blynk's topic table, or sys_<kind> from the broker).",
    ["kind"],
)
JOB_RUNS = Counter(
    "openblynk_scheduler_job_runs",
    "Runs of scheduled jobs in this process (the leader's): interval jobs by id, stored jobs by kind.",
    ["job", "outcome"],
)
