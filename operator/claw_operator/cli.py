"""`claw-operator` command line. Each subcommand lives in its own module and is imported
only when chosen: `claw-operator run` never loads the emulators, and the emulator commands
(`dev`, `railway-emulator`) come from the separate `claw_emulators` package, which is
installed with the `emulators` extra."""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("claw_operator.k8s.runner", "run the operator against the cluster in the current kubeconfig"),
    "crds": ("claw_operator.api.crdgen", "write the CustomResourceDefinitions generated from the models"),
    "railway-emulator": ("claw_emulators.railway.server", "serve the Railway API emulator"),
    "dev": ("claw_emulators.dev", "the operator on local Kubernetes and Railway emulators (make run)"),
}


def usage() -> str:
    lines = ["usage: claw-operator <command> [options]", "", "commands:"]
    lines += [f"  {name:<18} {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        print(f"claw-operator: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(SUBCOMMANDS[command][0])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"claw_emulators", "graphql", "aiohttp", "kmock"}:
            print(
                f"claw-operator {command}: needs the emulators; install them with "
                "`pip install 'claw-operator[emulators]'`",
                file=sys.stderr,
            )
            return 2
        raise
    result: int = module.cli_main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
