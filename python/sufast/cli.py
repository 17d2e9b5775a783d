"""The ``sufast`` command: ``sufast run MODULE:ATTR`` serves an App,
``sufast routes MODULE:ATTR`` lists its routes. Modelled on uvicorn's
command line; each ``run`` flag maps to one ``App.run`` keyword.

``python -m sufast`` is the same command.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _native
from ._version import __version__
from .applications import App
from .exceptions import SufastError
from .importer import AppLoadError, load_app, split_target
from .reload import ReloadSupervisor, watch_supervisor
from .sockets import BIND_ERROR_CODE, listen

__all__ = ["EXIT_APP", "EXIT_OK", "EXIT_SERVE", "EXIT_USAGE", "build_parser", "main"]

#: Served, then stopped by Ctrl-C or SIGTERM; or listed the routes.
EXIT_OK = 0
#: The app could not be loaded: no such module or attribute, not an App,
#: or its code raised while it was imported (its traceback is printed).
EXIT_APP = 1
#: A bad command line (argparse's own code).
EXIT_USAGE = 2
#: The server could not start: the port is in use, the host is not an
#: address of this machine, the socket given with --fd is not usable.
EXIT_SERVE = 3

LOG_LEVELS = tuple(_native.LOG_LEVELS)  # least to most said

_EPILOG = f"""\
exit codes:
  {EXIT_OK}  stopped by Ctrl-C or SIGTERM (or the routes were listed)
  {EXIT_APP}  the app could not be loaded (no such module or attribute, not a
     sufast.App, or an error raised while importing it)
  {EXIT_USAGE}  bad command line
  {EXIT_SERVE}  the server could not start (for example, the port is in use)
"""

_RUN_EXAMPLES = """\
examples:
  sufast run main:app                     the App called app in ./main.py
  sufast run pkg.main:container.app       dotted module and attribute
  sufast run main:create_app --factory    call create_app() to get the App
  sufast run main:app --reload            restart when a .py file changes
  sufast run main:app --production --workers 4 --port 8000
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``) and returns
    its exit code; see ``--help`` for the codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # before the server's own handlers are set
        return 128 + 2


def build_parser() -> argparse.ArgumentParser:
    """The ``sufast`` argument parser with its ``run`` and ``routes``
    commands."""
    parser = argparse.ArgumentParser(
        prog="sufast",
        description="Serve a sufast App, or list its routes.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_version(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="serve an App",
        description="Serve the App named by MODULE:ATTR until Ctrl-C or SIGTERM.",
        epilog=_RUN_EXAMPLES + "\n" + _EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(run)
    served = run.add_argument_group("where and how to serve")
    served.add_argument("--host", help="address to bind (default: 127.0.0.1, or 0.0.0.0 with --production)")
    served.add_argument("--port", type=_port, default=8000, help="port to bind; 0 picks a free one (default: 8000)")
    served.add_argument("--fd", type=_fd, help="serve this inherited, already listening socket instead of binding one")
    served.add_argument("--workers", type=_count, default=1, metavar="N", help="serve from N processes sharing one socket (default: 1)")
    served.add_argument(
        "--production",
        action="store_true",
        help="production mode: bind 0.0.0.0, no access log unless asked for",
    )
    reload = run.add_argument_group("reloading (development)")
    reload.add_argument("--reload", action="store_true", help="restart the app when a .py file under the watched directories changes")
    reload.add_argument(
        "--reload-dir",
        action="append",
        type=_directory,
        metavar="DIR",
        help="watch DIR instead of the app directory (repeatable)",
    )
    logs = run.add_argument_group("logging")
    logs.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log each request to stderr (default: on in development, off with --production)",
    )
    logs.add_argument("--access-log-format", choices=("common", "json"), help="Common Log Format lines, or JSON lines (default: common)")
    logs.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        help="what the server reports; above info, no banner and no reload messages (default: info)",
    )
    proxies = run.add_argument_group("behind a proxy or load balancer")
    proxies.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trust X-Forwarded-For, X-Forwarded-Proto and Forwarded from --forwarded-allow-ips "
        "(default: on, unless the App was made with its own forwarded_allow_ips and no flag is given)",
    )
    proxies.add_argument(
        "--forwarded-allow-ips",
        type=_address_list,
        metavar="LIST",
        help="comma-separated addresses or networks trusted to send proxy headers, or * for any "
        "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1)",
    )
    # The reload supervisor gives each child the read end of a pipe.
    run.add_argument("--reload-pipe", type=_fd, help=argparse.SUPPRESS)
    run.set_defaults(handler=_run, parser=run)

    routes = commands.add_parser(
        "routes",
        help="list an App's routes and their tiers",
        description="Print the routes of the App named by MODULE:ATTR, each with its tier (static, cached, dynamic, files).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target(routes)
    routes.set_defaults(handler=_routes, parser=routes)
    return parser


def _add_version(parser: argparse.ArgumentParser) -> None:
    implementation = platform.python_implementation()
    version = f"sufast {__version__} with {implementation} {platform.python_version()} on {platform.system()}"
    parser.add_argument("--version", action="version", version=version, help="print the version and exit")


def _add_target(parser: argparse.ArgumentParser) -> None:
    _add_version(parser)
    parser.add_argument("target", metavar="MODULE:ATTR", help="the App to use, for example main:app (app in main.py)")
    parser.add_argument(
        "--app-dir",
        type=_directory,
        default=Path("."),
        metavar="DIR",
        help="look for MODULE in DIR first; it is put first on sys.path (default: the current directory)",
    )
    parser.add_argument("--factory", action="store_true", help="ATTR is a function that returns the App; call it")


# Commands ----------------------------------------------------------------


def _routes(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if not isinstance(loaded, App):
        return loaded
    print(loaded._route_summary())
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    if args.reload_dir and not args.reload:
        _warn("--reload-dir has no effect without --reload")
    if args.reload:
        return _run_reloading(args)
    loaded = _load(args)
    if not isinstance(loaded, App):
        return loaded
    if args.reload_pipe is not None:
        watch_supervisor(args.reload_pipe)
    try:
        loaded.run(**run_options(args, loaded))
    except SufastError as exc:
        return _serve_error(exc)
    return EXIT_OK


def _run_reloading(args: argparse.Namespace) -> int:
    if args.workers > 1:
        _warn(f"--reload serves from one process; ignoring --workers {args.workers}")
    _check_target(args)
    app_dir = args.app_dir.resolve()
    command = [sys.executable, "-m", "sufast", "run", args.target, "--app-dir", str(app_dir)]
    command += _forwarded_flags(args)
    if args.fd is not None:
        try:
            listener = socket.socket(fileno=os.dup(args.fd))
        except OSError as exc:
            _error(f"--fd {args.fd} is not a socket this process inherited: {exc.strerror or exc}")
            return EXIT_SERVE
    else:
        try:
            listener = listen(args.host or ("0.0.0.0" if args.production else "127.0.0.1"), args.port)
        except SufastError as exc:
            return _serve_error(exc)
    dirs = [d.resolve() for d in args.reload_dir] if args.reload_dir else [app_dir]
    quiet = LOG_LEVELS.index(args.log_level or "info") < LOG_LEVELS.index("info")
    with listener:
        return ReloadSupervisor(command, listener, dirs, quiet=quiet).run()


def _forwarded_flags(args: argparse.Namespace) -> List[str]:
    """The flags a reload child needs: every ``run`` flag except where to
    listen (the supervisor passes its socket) and reloading itself."""
    flags: List[str] = []
    if args.host is not None:  # not bound by the child, but shown in its banner
        flags += ["--host", args.host]
    if args.factory:
        flags.append("--factory")
    if args.production:
        flags.append("--production")
    if args.access_log is not None:
        flags.append("--access-log" if args.access_log else "--no-access-log")
    if args.access_log_format is not None:
        flags += ["--access-log-format", args.access_log_format]
    if args.log_level is not None:
        flags += ["--log-level", args.log_level]
    if args.proxy_headers is not None:
        flags.append("--proxy-headers" if args.proxy_headers else "--no-proxy-headers")
    if args.forwarded_allow_ips is not None:
        flags += ["--forwarded-allow-ips", ",".join(args.forwarded_allow_ips)]
    return flags


def run_options(args: argparse.Namespace, app: App) -> Dict[str, Any]:
    """The ``App.run`` keywords for the parsed ``run`` flags ``args``.
    Flags left out leave the keyword at ``App.run``'s default."""
    options: Dict[str, Any] = {"port": args.port, "production": args.production, "workers": args.workers}
    if args.host is not None:
        options["host"] = args.host
    if args.fd is not None:
        options["fd"] = args.fd
    if args.access_log is not None:
        options["access_log"] = args.access_log
    if args.access_log_format is not None:
        options["access_log_format"] = args.access_log_format
    if args.log_level is not None:
        options["log_level"] = args.log_level
    trusted = _trusted_proxies(args, app)
    if trusted is not None:
        options["forwarded_allow_ips"] = trusted
    return options


def _trusted_proxies(args: argparse.Namespace, app: App) -> Optional[List[str]]:
    """Whom to trust for proxy headers, as uvicorn decides: with
    ``--no-proxy-headers`` no one, otherwise ``--forwarded-allow-ips``,
    else ``$FORWARDED_ALLOW_IPS``, else 127.0.0.1. ``None`` keeps the list
    the App was made with, when it has one and no flag asks otherwise."""
    if args.proxy_headers is False:
        return []
    if args.forwarded_allow_ips is not None:
        return args.forwarded_allow_ips
    from_env = os.environ.get("FORWARDED_ALLOW_IPS")
    if from_env:
        try:
            return _address_list(from_env)
        except argparse.ArgumentTypeError as exc:
            args.parser.error(f"$FORWARDED_ALLOW_IPS: {exc}")
    if args.proxy_headers is None and app._forwarded_allow_ips is not None:
        return None
    return ["127.0.0.1"]


# Loading -----------------------------------------------------------------


def _check_target(args: argparse.Namespace) -> None:
    try:
        split_target(args.target)
    except AppLoadError as exc:
        args.parser.error(str(exc))


def _load(args: argparse.Namespace) -> Union[App, int]:
    """The App ``args.target`` names, or the exit code after saying why
    there is none."""
    _check_target(args)
    sys.path.insert(0, str(args.app_dir.resolve()))
    try:
        return load_app(args.target, factory=args.factory)
    except AppLoadError as exc:
        _error(str(exc))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        # A mistake in the app's own code: its traceback says where.
        traceback.print_exc()
        what = "calling the factory" if args.factory else "importing it"
        _error(f"could not load {args.target}: {what} raised the error above")
    return EXIT_APP


def _serve_error(exc: SufastError) -> int:
    message = exc.message
    if exc.code == BIND_ERROR_CODE and "in use" in message:
        message += "; choose another port with --port, or --port 0 for any free one"
    _error(message)
    return EXIT_SERVE


def _error(message: str) -> None:
    print(f"sufast: error: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"sufast: warning: {message}", file=sys.stderr, flush=True)


# Argument types ------------------------------------------------------------


def _port(text: str) -> int:
    value = _integer(text, "port")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be from 0 to 65535, got {value}")
    return value


def _count(text: str) -> int:
    value = _integer(text, "count")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fd(text: str) -> int:
    value = _integer(text, "file descriptor")
    if value < 0:
        raise argparse.ArgumentTypeError(f"a file descriptor is not negative, got {value}")
    return value


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no directory {text!r}")
    return path


def _address_list(text: str) -> List[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} is not an IP address or network (or *)") from None
    if not items:
        raise argparse.ArgumentTypeError("give at least one address, network or *")
    return items
