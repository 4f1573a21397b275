"""When to retry a failed Railway request, and how long to wait first.

Idempotency rule. A retryable failure (5xx, timeout, dropped connection) does not tell us
whether Railway executed the request. Replaying a query, or a mutation that sets state
to a value (serviceInstanceUpdate, limits, variable upsert, connect, restart, stop,
delete), converges on the same result, so those retry on every retryable error. Replaying
a mutation that *creates* something (projectCreate, serviceCreate, serviceDomainCreate,
serviceInstanceDeployV2, deploymentRedeploy, the ServiceConfigure batch) could create it
twice: a second project, a second domain, a second deployment. Those retry only when the
request provably did not run: Railway throttled it (HTTP 429 or a throttling error), or
the connection failed before the request was sent. Otherwise the error goes up to the
caller, whose next reconcile observes Railway and adopts what the first attempt made
before it decides to create anything again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from claw_operator.railway.errors import RailwayError, RailwayRateLimitedError, RailwayRetryableError

# 2**62 times any sane base is far beyond any cap; stops the float from overflowing.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: the n-th retry waits a uniformly random time
    in [0, min(maximum, base * 2**n)]. Full jitter spreads a crowd of callers that failed
    together, so they do not come back together. A server's Retry-After is a floor: we
    never come back sooner than Railway asked, even when it asks for more than `maximum`."""

    base: float = 0.5
    maximum: float = 30.0

    def ceiling(self, retry_number: int) -> float:
        return min(self.maximum, self.base * float(2 ** min(retry_number, _MAX_EXPONENT)))

    def delay(self, retry_number: int, rng: random.Random, retry_after: float | None = None) -> float:
        jittered = rng.uniform(0.0, self.ceiling(retry_number))
        if retry_after is not None and retry_after > jittered:
            return retry_after
        return jittered


def should_retry(error: RailwayError, *, idempotent: bool, provably_unexecuted: bool) -> bool:
    """The idempotency rule of this module's docstring."""
    if not isinstance(error, RailwayRetryableError):
        return False
    # Throttling means Railway refused the request before running it.
    return idempotent or provably_unexecuted or isinstance(error, RailwayRateLimitedError)
