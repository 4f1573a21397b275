"""`kubectl claw`: read and steer ClawInstances and ClawPlans.

Installed as the `kubectl-claw` console script, which kubectl finds on PATH as the
`claw` plugin. Exit codes follow kubectl: 0 success, 1 any error (usage errors print the
usage too)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from claw_kubectl import actions, render
from claw_kubectl.cluster import Cluster, PluginError
from claw_kubectl.logs import run_logs

VERBS = ["restart", "redeploy", "suspend", "resume", "pause", "unpause"]
VERB_HELP = {
    "restart": "restart the running deployment without a rebuild (claw.io/restartedAt)",
    "redeploy": "build and deploy again (claw.io/redeployRequestedAt)",
    "suspend": "stop the running deployment (spec.suspend: true)",
    "resume": "start it again (spec.suspend: false)",
    "pause": 'stop all reconciliation of it (claw.io/paused: "true")',
    "unpause": "resume reconciliation (removes claw.io/paused)",
}
EXAMPLES = """examples:
  kubectl claw list -A
  kubectl claw status my-chatbot -n tenant-a
  kubectl claw logs my-chatbot -n tenant-a --tail 100 --follow
  kubectl claw restart my-chatbot -n tenant-a
  kubectl claw wait my-chatbot -n tenant-a --for condition=Ready --timeout 5m
  kubectl claw rollout status pro
"""


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """kubectl's convention: a usage error exits 1, with the usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.format_usage()}error: {message}")


def _connection_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("-n", "--namespace", default=default, help="the namespace (default: the context's)")
    parser.add_argument(
        "--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", default=default, help="the kubeconfig context to use")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kubectl claw",
        description="Read and steer ClawInstances and ClawPlans (claw-operator).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_flags(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _connection_flags(sub, top=False)
        return sub

    status = command("status", "phase, progress, health, URL, conditions, Railway ids, usage and last events")
    status.add_argument("name")
    status.add_argument(
        "--events", type=int, default=5, metavar="N", help="how many recent events (default 5)"
    )

    listing = command("list", "the fleet by phase and plan")
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")

    logs = command("logs", "deploy (or build) logs from Railway, secrets redacted")
    logs.add_argument("name")
    logs.add_argument("--build", action="store_true", help="build logs instead of deploy logs")
    logs.add_argument("--tail", type=int, default=50, metavar="N", help="lines to show first (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "--token-secret",
        metavar="NAMESPACE/NAME",
        help="Managed instances: the Secret (key token) with the platform token; default $RAILWAY_TOKEN",
    )
    logs.add_argument("--railway-api-url", help="default $RAILWAY_API_URL, else Railway's")

    for verb in VERBS:
        command(verb, VERB_HELP[verb]).add_argument("name")

    wait = command("wait", "wait until a condition holds, like kubectl wait")
    wait.add_argument("name")
    wait.add_argument("--for", dest="for_", default="condition=Ready", metavar="condition=TYPE[=STATUS]")
    wait.add_argument("--timeout", default="300s", help="e.g. 30s, 5m (default 300s)")

    rollout = command("rollout", "a plan's rollout")
    rollout_commands = rollout.add_subparsers(dest="rollout_command", metavar="COMMAND", parser_class=_Parser)
    rollout_status = rollout_commands.add_parser("status", help="revision, phase, updated/pending/failed")
    _connection_flags(rollout_status, top=False)
    rollout_status.add_argument("plan")
    rollout_resume = rollout_commands.add_parser(
        "resume", help="resume a halted rollout (claw.io/rolloutResumedAt)"
    )
    _connection_flags(rollout_resume, top=False)
    rollout_resume.add_argument("plan")
    return parser


def _run(args: argparse.Namespace, out: TextIO) -> int:
    cluster = Cluster.connect(args.kubeconfig, args.context, args.namespace)
    if args.command == "status":
        obj = cluster.instance(args.name)
        print(render.status_text(obj, cluster.events(args.name), last_events=args.events), file=out)
    elif args.command == "list":
        print(render.list_text(cluster.instances(args.all_namespaces), args.all_namespaces), file=out)
    elif args.command == "logs":
        obj = cluster.instance(args.name)
        try:
            run_logs(
                cluster,
                obj,
                out,
                build=args.build,
                tail=args.tail,
                follow=args.follow,
                token_secret=args.token_secret,
                api_url=args.railway_api_url,
            )
        except KeyboardInterrupt:
            return 0
    elif args.command in VERBS:
        cluster.patch_instance(args.name, actions.patch_for(args.command))
        print(f"clawinstance.claw.io/{args.name} {actions.DONE_MESSAGES[args.command]}", file=out)
    elif args.command == "wait":
        try:
            type_, wanted = actions.parse_for(args.for_)
            timeout = actions.parse_duration(args.timeout)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        met = actions.wait_for(lambda: cluster.instance(args.name), type_, wanted, timeout)
        if met is None:
            raise PluginError(f"timed out waiting for the condition on clawinstances/{args.name}")
        print(f"clawinstance.claw.io/{args.name} condition met", file=out)
    elif args.command == "rollout":
        if args.rollout_command == "status":
            print(render.rollout_text(cluster.plan(args.plan)), file=out)
        elif args.rollout_command == "resume":
            cluster.patch_plan(args.plan, actions.resume_rollout_patch())
            print(f"clawplan.claw.io/{args.plan} rollout resume requested", file=out)
        else:
            raise UsageError("usage: kubectl claw rollout status|resume PLAN")
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.command is None:
            parser.print_help(out)
            return 0
        return _run(args, out)
    except UsageError as exc:
        print(str(exc), file=err)
        return 1
    except PluginError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
