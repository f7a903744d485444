"""The `hotspot` command line: one entry point, one module per command group.

Each module listed in COMMANDS exposes `register(subparsers)`, adding its
sub-commands with a `handler(args) -> int` default. Modules keep heavy imports
(faust, shapely, chdb) inside their handlers so `hotspot --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order shown by `hotspot --help`.
COMMANDS = [
    "run",
    "broker",
    "worker",
    "gateway",
    "hotspots",
    "allocate",
    "replay",
    "simulate",
    "tasked",
    "pings",
    "report",
    "devices",
    "sql",
    "config",
]


class CommandError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotspot",
        description="Hotspot Patrol: direct patrols to serious-violence hot spots and measure the dosage they received.",
        epilog="Example: hotspot run --simulate 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (default: $HOTSPOT_CONFIG or ./hotspot.toml if present)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"streams.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"streams.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from streams.datadir import private_umask

    # Before anything is created: every file and folder of ours (and of the broker's JVM,
    # the worker and the gateway, which inherit it) is private to this user.
    private_umask()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    if args.config:
        from streams.settings import use_config_file

        use_config_file(args.config)
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"hotspot {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError) and exc.title == "Settings":
            from streams.settings import describe_validation_error

            print(f"hotspot {args.command}: {describe_validation_error(exc)}", file=sys.stderr)
            return 1
        # An unreachable broker is an operator's problem, not a bug: say so in one line.
        from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

        if isinstance(exc, SaslAuthenticationFailed) or (
                isinstance(exc, KafkaConnectionError) and _credentials_refused()):
            from streams.settings import get_settings

            s = get_settings()
            print(f"hotspot {args.command}: Kafka at {s.bootstrap_servers} refused the credentials of user "
                  f"{s.kafka_sasl_username!r} ({s.kafka_sasl_mechanism}); check HOTSPOT_KAFKA_SASL_USERNAME and "
                  "HOTSPOT_KAFKA_SASL_PASSWORD", file=sys.stderr)
            return 1
        if isinstance(exc, KafkaConnectionError):
            from streams.settings import get_settings

            print(f"hotspot {args.command}: cannot reach Kafka at {get_settings().bootstrap_servers} "
                  "(start it with `hotspot broker start` or `hotspot run`, or set HOTSPOT_KAFKA_BOOTSTRAP)", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


def _credentials_refused() -> bool:
    import asyncio

    from streams.kafka import credentials_refused
    from streams.settings import get_settings

    return asyncio.run(credentials_refused(get_settings().bootstrap_servers))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
