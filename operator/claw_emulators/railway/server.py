"""Running the emulator: in-process (`async with RailwayEmulator(...) as emu`) for tests
and `make run`, or standalone as `claw-operator railway-emulator --port N`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from aiohttp import web

from claw_emulators.railway.app import GRAPHQL_PATH, OAUTH_TOKEN_PATH, EmulatorApp, RequestRecord
from claw_emulators.railway.deploys import PhaseDurations
from claw_emulators.railway.faults import Fault, FaultBook, fault_from_mapping, parse_fault_flag
from claw_emulators.railway.oauth import OAuthEndpoint
from claw_emulators.railway.ratelimit import RateTier, parse_tier
from claw_emulators.railway.state import Clock, RailwayState, Token

log = logging.getLogger(__name__)

DEV_TOKEN = "dev-platform-token"
DEV_WORKSPACE = "ws-platform"


class RailwayEmulator:
    """An emulated Railway API on 127.0.0.1.

    `phase_seconds` is either one duration for each of QUEUED, INITIALIZING, BUILDING and
    DEPLOYING, or a `PhaseDurations`. `tokens` maps a raw token to `(workspace, tier)`;
    without it the dev token `dev-platform-token` (workspace `ws-platform`, Hobby) exists.
    `clock` returns epoch seconds; inject one to drive deployments without sleeping.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        phase_seconds: float | PhaseDurations = 1.0,
        tokens: Mapping[str, tuple[str, RateTier | str]] | None = None,
        faults: Iterable[Fault] = (),
        clock: Clock | None = None,
        seed: int = 0,
    ) -> None:
        phases = (
            phase_seconds
            if isinstance(phase_seconds, PhaseDurations)
            else PhaseDurations.uniform(phase_seconds)
        )
        book = FaultBook(seed=seed)
        self.state = RailwayState(
            phases=phases, faults=book, seed=seed, **({"clock": clock} if clock else {})
        )
        for raw, (workspace, tier) in (
            tokens if tokens is not None else {DEV_TOKEN: (DEV_WORKSPACE, "hobby")}
        ).items():
            self.state.add_token(raw, workspace, tier=tier)
        for fault in faults:
            book.add(fault)
        self._http = EmulatorApp(self.state)
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """The GraphQL endpoint, like https://backboard.railway.com/graphql/v2."""
        return f"{self.base_url}{GRAPHQL_PATH}"

    @property
    def oauth_token_url(self) -> str:
        """The OAuth token endpoint, like https://backboard.railway.com/oauth/token."""
        return f"{self.base_url}{OAUTH_TOKEN_PATH}"

    @property
    def oauth(self) -> OAuthEndpoint:
        """OAuth apps and grants: `emu.oauth.add_app(client_id, secret, workspace)`,
        `emu.oauth.issue(client_id)` -> {access_token, refresh_token, expires_in}."""
        return self._http.oauth

    @property
    def requests(self) -> list[RequestRecord]:
        """Every GraphQL request so far, in order (see `RequestRecord`)."""
        return self._http.requests

    @property
    def app(self) -> web.Application:
        return self._http.app

    async def start(self) -> None:
        runner = web.AppRunner(self._http.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port)
        await site.start()
        self._runner = runner
        # With port 0 the OS picked one; read it back from the bound socket.
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RailwayEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.stop()

    def add_token(
        self,
        token: str,
        workspace: str = DEV_WORKSPACE,
        *,
        workspaces: Iterable[str] = (),
        tier: RateTier | str = "hobby",
        per_hour: int | None = None,
        per_second: int | None = None,
    ) -> Token:
        """Register a token; `per_hour`/`per_second` give it a custom budget."""
        if per_hour is not None:
            tier = RateTier("custom", per_hour, per_second)
        return self.state.add_token(token, workspace, workspaces=workspaces, tier=tier)

    def add_fault(self, fault: Fault | None = None, /, **params: Any) -> Fault:
        """Add one fault: a `Fault`, or keyword parameters as in the admin API
        (`emu.add_fault(kind="fail_build", service="web")`)."""
        return self.state.faults.add(fault if fault is not None else fault_from_mapping(params))

    def set_faults(self, *faults: Fault | Mapping[str, Any]) -> list[Fault]:
        """Replace every active fault with these."""
        self.state.faults.clear()
        return [
            self.add_fault(fault) if isinstance(fault, Fault) else self.add_fault(**dict(fault))
            for fault in faults
        ]

    def clear_faults(self, kind: str | None = None) -> int:
        return self.state.faults.clear(kind)

    def reset(self) -> None:
        """Forget projects, faults and the request log; tokens stay, with fresh budgets."""
        self._http.reset()


def _token_flag(text: str) -> tuple[str, str, RateTier]:
    token, _, rest = text.partition(":")
    workspace, _, tier = rest.partition(":")
    if not token:
        raise argparse.ArgumentTypeError("--token needs TOKEN[:workspace[:tier]]")
    try:
        return token, workspace or DEV_WORKSPACE, parse_tier(tier or "hobby")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fault_flag(text: str) -> Fault:
    try:
        return parse_fault_flag(text)
    except (ValueError, TypeError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claw-operator railway-emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0 picks a free one)")
    parser.add_argument(
        "--token",
        action="append",
        type=_token_flag,
        default=[],
        metavar="TOKEN[:WORKSPACE[:TIER]]",
        help=f"accept this bearer token; TIER is free, hobby, pro or PER_HOUR[/PER_SECOND]. "
        f"Repeatable. Default: {DEV_TOKEN}:{DEV_WORKSPACE}:hobby",
    )
    parser.add_argument(
        "--phase-seconds", type=float, default=1.0, help="seconds in each deploy phase (default 1.0)"
    )
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault_flag,
        default=[],
        metavar="KIND[:key=value,...]",
        help="inject a fault, e.g. fail_build:service=web, http_error:status=502,fraction=0.1, "
        "crash_after_start:seconds=30, hang_deploy, echo_variables, throttle:mode=http,count=3, "
        "latency:seconds=0.5, invalid_token. Repeatable.",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, domains and fault fractions")
    return parser


async def _serve(emulator: RailwayEmulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with emulator:
        print(f"Railway emulator serving {emulator.url}", flush=True)
        await stop.wait()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signum)


def cli_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tokens = {token: (workspace, tier) for token, workspace, tier in args.token} or None
    emulator = RailwayEmulator(
        host=args.host,
        port=args.port,
        phase_seconds=args.phase_seconds,
        tokens=tokens,
        faults=args.fault,
        seed=args.seed,
    )
    asyncio.run(_serve(emulator))
    return 0
