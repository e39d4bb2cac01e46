"""Every error kpisync raises on purpose, in one tree.

    KpisyncError                      root, not raised today itself; `.hint`, `.exit_code` for the CLI
    ├── ConfigError                   settings.toml or the environment is wrong (exit 2)
    ├── ConnectorError                a CRM said no or could not be reached (exit 3)
    │   ├── AuthError                 credentials refused or revoked: re-authorise the source
    │   ├── RateLimited    [retry]    the CRM asked us to slow down; carries retry_after seconds
    │   ├── TransientError [retry]    5xx, timeouts, dropped connections: worth another try
    │   │   └── SessionLost           Vtiger's session died: log in again, then retry the call
    │   ├── RejectedError             the CRM refused this request (4xx) and will again
    │   │   ├── VtigerFailure         Vtiger answered `success: false`; `.code` is its error code
    │   │   └── SyncUnavailable       Vtiger's `sync` is broken (stock 8.2): read by query instead
    │   └── SchemaDriftError          an object or field we rely on changed or vanished
    ├── StateError                    the store or its bookkeeping is not as expected (exit 4)
    │   └── ClaimLost                 a run's lease was taken over: it stops, writing nothing more
    ├── MetricError                   a KPI cannot be computed (exit 5); not raised today
    │   └── InsufficientData          not raised today: "no data" is a value with a reason
    ├── WritebackError                write-back could not proceed (exit 6)
    │   ├── ConflictError             an approved plan whose CRM values changed since (exit 6)
    │   └── WritesFailed              a run ended with writes the CRM refused or did not keep (exit 7)
    ├── RowsRejected                  rows of an input file were refused, the rest kept (exit 7)
    └── Interrupted                   a stop arrived; the run ended at a checkpoint (exit 130)
        └── BudgetSpent               the org's API share is used; the next run resumes

SessionLost, VtigerFailure and SyncUnavailable live in connectors/vtiger/client.py, BudgetSpent
in kpisync/budget.py; tests/test_errors_tree.py keeps this drawing equal to the classes.
Retryable errors carry `retryable = True`; the retry policy retries on that marker and nothing else.
"""

from __future__ import annotations


class KpisyncError(Exception):
    """Root of every deliberate kpisync error."""

    exit_code = 1
    retryable = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(KpisyncError):
    exit_code = 2


class ConnectorError(KpisyncError):
    exit_code = 3


class AuthError(ConnectorError):
    pass


class RateLimited(ConnectorError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class TransientError(ConnectorError):
    retryable = True


class RejectedError(ConnectorError):
    pass


class SchemaDriftError(ConnectorError):
    pass


class StateError(KpisyncError):
    exit_code = 4


class ClaimLost(StateError):
    """The run's lease on its source (or the computation) was taken over: it must stop."""


class MetricError(KpisyncError):
    exit_code = 5


class InsufficientData(MetricError):
    pass


class WritebackError(KpisyncError):
    exit_code = 6


class ConflictError(WritebackError):
    pass


class WritesFailed(WritebackError):
    exit_code = 7


class RowsRejected(KpisyncError):
    exit_code = 7


class Interrupted(KpisyncError):
    """A stop signal arrived; the run ended cleanly at a checkpoint."""

    exit_code = 130
