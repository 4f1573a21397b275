"""The controller: one ClawInstance at a time, resolve -> observe -> decide -> act -> status.

The entry points the fleet engine and the Kopf glue use are re-exported here."""

from claw_operator.controller.act import Event, Persist
from claw_operator.controller.errors import RequeueAfter, Terminal
from claw_operator.controller.finalize import FinalizeRetry, finalize
from claw_operator.controller.ports import (
    HandleFactory,
    HealthPort,
    ObserverPort,
    PlanChoice,
    PlanChooser,
    RailwayHandle,
    RailwayPort,
    TokenRefreshPort,
    TokenTier,
    UsagePort,
)
from claw_operator.controller.reconciler import Inputs, Outcome, Runtime, reconcile
from claw_operator.controller.resolve import SecretGetter

__all__ = [
    "Event",
    "FinalizeRetry",
    "HandleFactory",
    "HealthPort",
    "Inputs",
    "ObserverPort",
    "Outcome",
    "Persist",
    "PlanChoice",
    "PlanChooser",
    "RailwayHandle",
    "RailwayPort",
    "RequeueAfter",
    "Runtime",
    "SecretGetter",
    "Terminal",
    "TokenRefreshPort",
    "TokenTier",
    "UsagePort",
    "finalize",
    "reconcile",
]
