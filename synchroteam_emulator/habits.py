"""Command-line switches for the real API's habits the emulator can imitate (all off by default).

Shared by `python -m synchroteam_emulator` and `python -m synchroteam_emulator.demo run|ui`:
`add_api_habit_arguments(parser)`, then `check_api_habits(parser, args)` and `apply_api_habits(emulator, args)`.
"""

from __future__ import annotations

import argparse

from .data import RESOURCES
from .faults import TOO_MANY
from .server import Emulator

DEFAULT_WINDOW = 60.0
_RATE_SWITCHES = ("rate_window", "fixed_window", "rate_headers", "no_retry_after", "quota_message")


def _resource(name: str) -> str:
    name = name.strip().lower()
    if name not in RESOURCES:
        raise argparse.ArgumentTypeError(f"unknown resource {name!r} (one of {', '.join(RESOURCES)})")
    return name


def _resources(value: str) -> tuple[str, ...]:
    """'invoice,creditnote' -> ('invoice', 'creditnote')."""
    return tuple(_resource(n) for n in value.split(",") if n.strip())


def _resource_filter(value: str) -> tuple[str, str]:
    """'job:changedSince' -> ('job', 'changedSince')."""
    resource, sep, name = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected RESOURCE:PARAMETER such as job:changedSince, got {value!r}")
    return _resource(resource), name.strip()


def _positive(value: str) -> float:
    seconds = float(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return seconds


def add_api_habit_arguments(parser: argparse.ArgumentParser) -> None:
    """The switches, in their own group of `--help`."""
    g = parser.add_argument_group("API habits", "behaviours of the real API to imitate (all off by default)")
    g.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="requests admitted per window per tenant, then 429 (default window: a sliding minute)",
    )
    g.add_argument(
        "--rate-window",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help=f"length of the rate-limit window (default {DEFAULT_WINDOW:g})",
    )
    g.add_argument(
        "--fixed-window",
        action="store_true",
        help="a fixed window starting at the first request after the previous one ended",
    )
    g.add_argument(
        "--rate-headers",
        action="store_true",
        help="X-RateLimit-Limit/-Remaining/-Reset and X-Quota-Limit on every answer",
    )
    g.add_argument("--no-retry-after", action="store_true", help="the rate limit's 429s carry no Retry-After")
    g.add_argument(
        "--quota-message",
        action="store_true",
        help="the rate limit's 429 message speaks of a quota (the daily quota is not spent)",
    )
    g.add_argument(
        "--ignore-filter",
        type=_resource_filter,
        action="append",
        default=[],
        metavar="RESOURCE:PARAMETER",
        help="list requests of RESOURCE ignore that query parameter, e.g. job:changedSince (repeatable)",
    )
    g.add_argument(
        "--firewall", action="store_true", help="answer every request with an Imperva Incapsula HTML page, status 403"
    )
    g.add_argument(
        "--lean-lists",
        type=_resources,
        default=(),
        metavar="RESOURCE[,RESOURCE...]",
        help="list rows of these resources come without lines, e.g. invoice,creditnote",
    )
    g.add_argument(
        "--no-activity-list",
        action="store_true",
        help="activity/list answers 404 Not found, as an unknown resource does (the endpoint is only inferred)",
    )


def check_api_habits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error for window switches given without --rate-limit (they would do nothing)."""
    if args.rate_limit is None:
        given = [f"--{name.replace('_', '-')}" for name in _RATE_SWITCHES if getattr(args, name)]
        if given:
            parser.error(f"{', '.join(given)} need(s) --rate-limit")
    elif args.rate_limit < 0:
        parser.error(f"--rate-limit must be 0 or more, got {args.rate_limit}")


def quota_message(limit: int, window_seconds: float) -> str:
    """A 429 text that says "quota" for what is only the per-window limit, as the real API's may."""
    return f"API calls quota exceeded! maximum admitted {limit} per {window_seconds:g}s."


def apply_api_habits(emulator: Emulator, args: argparse.Namespace) -> None:
    """Switch on what `args` asks for; with no switch given, the emulator is left as it is."""
    if args.rate_limit is not None:
        window = args.rate_window or DEFAULT_WINDOW
        message = quota_message(args.rate_limit, window) if args.quota_message else TOO_MANY
        emulator.set_rate_limit(
            args.rate_limit,
            retry_after=not args.no_retry_after,
            window_seconds=window,
            fixed=args.fixed_window,
            headers=args.rate_headers,
            message=message,
        )
    ignored: dict[str, list[str]] = {}
    for resource, name in args.ignore_filter:
        ignored.setdefault(resource, []).append(name)
    for resource, names in ignored.items():
        emulator.ignore_filters(resource, *names)
    if args.firewall:
        emulator.set_firewall(403)
    if args.lean_lists:
        emulator.set_lean_lists(*args.lean_lists)
    if args.no_activity_list:
        emulator.set_no_activity_list()


def describe_api_habits(args: argparse.Namespace) -> list[str]:
    """One line per switch that is on, for the banner of whoever starts the emulator."""
    lines = []
    if args.rate_limit is not None:
        window = args.rate_window or DEFAULT_WINDOW
        kind = "fixed" if args.fixed_window else "sliding"
        extras = [
            x
            for x, on in (
                ("rate headers", args.rate_headers),
                ("no Retry-After", args.no_retry_after),
                ("quota-sounding message", args.quota_message),
            )
            if on
        ]
        lines.append(f"rate limit {args.rate_limit} per {window:g}s ({', '.join([kind, *extras])})")
    lines += [f"ignores {resource}/list?{name}=" for resource, name in args.ignore_filter]
    if args.firewall:
        lines.append("firewall: every answer is an Imperva HTML page, 403")
    if args.lean_lists:
        lines.append(f"lean lists (no lines): {', '.join(args.lean_lists)}")
    if args.no_activity_list:
        lines.append("no activity/list: it answers 404 Not found, as an unknown resource")
    return lines
