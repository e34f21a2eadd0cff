"""pkctl's entry point: argument parsing, dispatch, and the error boundary.

Every command module exposes ``run(ctx, args) -> int``. ``main`` parses the
arguments (global flags may come before or after the command, as with
kubectl), builds the ``Context``, runs the command and is the only place
that catches: server errors, configuration errors and user errors become
one kubectl-style line on stderr and exit code 1; Ctrl-C exits 130 and a
closed pipe (``pkctl get pods | head``) exits quietly. No traceback reaches
the user.

Everything after a bare ``--`` is set aside before argparse sees it (argparse
would otherwise try to parse the container's own flags) and handed to the
commands that take a command line: ``run`` and ``exec``.
"""
from __future__ import annotations

import argparse
import sys
from typing import IO

from client.errors import ApiError
from client.kubeconfig import ConfigError

from .context import Context
from .errors import CLIError, ExitCode, format_error
from .flags import add_bool, bool_options, normalize_bools, parse_duration

COMMANDS = {
    "get": ("get", "Display one or many resources"),
    "describe": ("describe", "Show details of a specific resource or group of resources"),
    "apply": ("apply", "Apply a configuration to a resource by file name or stdin"),
    "create": ("apply", "Create a resource from a file or from stdin"),
    "delete": ("delete", "Delete resources by file names, stdin, resources and names, or by label selector"),
    "logs": ("podio", "Print the logs for a container in a pod"),
    "exec": ("podio", "Execute a command in a container"),
    "run": ("workloads", "Run a particular image on the cluster"),
    "expose": ("workloads", "Take a pod, service or deployment and expose it as a new service"),
    "label": ("metadata", "Update the labels on a resource"),
    "annotate": ("metadata", "Update the annotations on a resource"),
    "api-resources": ("info", "Print the supported API resources on the server"),
    "version": ("info", "Print the client and server version information"),
    "cluster-info": ("info", "Display cluster information"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting 2."""

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("argument COMMAND: invalid choice: "):
            word = message.split("invalid choice: ", 1)[1].split(" (", 1)[0].strip("'")
            raise CLIError(f'unknown command "{word}" for "pkctl"\nRun \'pkctl --help\' for usage.')
        raise CLIError(f"{message}\nSee '{self.prog} -h' for help and examples")


def _global_flags() -> argparse.ArgumentParser:
    # SUPPRESS defaults: a flag given before the command is not reset by the
    # subcommand parser, which knows the same flags.
    g = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g.add_argument("--kubeconfig", help="path to the kubeconfig file to use")
    g.add_argument("-s", "--server", help="the address and port of the API server")
    g.add_argument("--token", help="bearer token for authentication to the API server")
    g.add_argument("-n", "--namespace", help="the namespace scope for this request")
    g.add_argument("--context", help="the name of the kubeconfig context to use")
    g.add_argument("--request-timeout", type=parse_duration, metavar="DURATION",
                   help="how long to wait for a server answer (also bounds watches), e.g. 30s")
    return g


def _output(p, help="output format: wide|yaml|json|name|jsonpath=...|custom-columns=...") -> None:
    p.add_argument("-o", "--output", default="", help=help)


def _selector(p) -> None:
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")


def _dry_run(p) -> None:
    p.add_argument("--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"],
                   help="only print the object that would be sent (client) or submit without persisting (server)")


def _files(p, required=False) -> None:
    p.add_argument("-f", "--filename", action="append", default=[], required=required,
                   help="file, directory or - (stdin) with the manifests; repeatable")
    add_bool(p, "-R", "--recursive", help="process the directory given with -f recursively")


def build_parser() -> argparse.ArgumentParser:
    g = _global_flags()
    parser = _Parser(prog="pkctl", parents=[g],
                     description="pkctl controls a pocketkube (or any Kubernetes) cluster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    commands: dict[str, argparse.ArgumentParser] = {}

    def cmd(name: str) -> argparse.ArgumentParser:
        commands[name] = sub.add_parser(name, parents=[g], help=COMMANDS[name][1], description=COMMANDS[name][1])
        return commands[name]

    p = cmd("get")
    p.add_argument("types", nargs="*", metavar="TYPE[.GROUP][/NAME]")
    _output(p)
    _selector(p)
    p.add_argument("--field-selector", default="", help="field selector, e.g. status.phase=Running")
    add_bool(p, "-A", "--all-namespaces", help="list across all namespaces")
    add_bool(p, "-w", "--watch", help="after listing, watch for changes")
    add_bool(p, "--watch-only", help="watch for changes without listing first")
    add_bool(p, "--no-headers", help="do not print column headers")
    add_bool(p, "--show-labels", help="add a LABELS column")
    add_bool(p, "--show-kind", help="prefix names with their kind")
    add_bool(p, "--ignore-not-found", help="do not fail when a named object does not exist")
    p.add_argument("-L", "--label-columns", action="append", default=[], help="label keys shown as columns")

    p = cmd("describe")
    p.add_argument("types", nargs="*", metavar="TYPE[/NAME] [NAME_PREFIX]")
    _selector(p)
    add_bool(p, "-A", "--all-namespaces", help="describe across all namespaces")
    add_bool(p, "--show-events", default=True, help="show events (default true)")

    for name in ("apply", "create"):
        p = cmd(name)
        _files(p, required=False)
        _output(p, help="output format: yaml|json|name")
        _dry_run(p)
        p.add_argument("--field-manager", default="", help="name of the manager recorded for the change")
        if name == "apply":
            add_bool(p, "--server-side", help="send a server-side apply patch instead of a client-side one")
            add_bool(p, "--force-conflicts", help="with --server-side: take ownership of conflicting fields")
        else:
            p.add_argument("what", nargs="*", metavar="configmap NAME | secret generic|tls|docker-registry NAME",
                           help="build the object from flags instead of -f (see pkctl/generators.py)")
            p.add_argument("--from-literal", action="append", default=[], help="KEY=VALUE; repeatable")
            p.add_argument("--from-file", action="append", default=[],
                           help="[KEY=]PATH, a file or a directory of files; repeatable")
            p.add_argument("--from-env-file", action="append", default=[], help="a file of KEY=VALUE lines")
            p.add_argument("--type", default="", help="secret generic: the secret's type (default Opaque)")
            p.add_argument("--cert", default="", help="secret tls: the PEM certificate file")
            p.add_argument("--key", default="", help="secret tls: the PEM private key file")
            p.add_argument("--docker-server", default="", help="secret docker-registry: the registry (default "
                           "https://index.docker.io/v1/)")
            p.add_argument("--docker-username", default="", help="secret docker-registry: the user name")
            p.add_argument("--docker-password", default="", help="secret docker-registry: the password")
            p.add_argument("--docker-email", default="", help="secret docker-registry: the email")
            add_bool(p, "--immutable", help="make the configmap or secret immutable")

    p = cmd("delete")
    p.add_argument("types", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    _files(p)
    _selector(p)
    p.add_argument("--field-selector", default="", help="field selector for the objects to delete")
    add_bool(p, "--all", help="delete every object of the given types in the namespace")
    add_bool(p, "-A", "--all-namespaces", help="with --all or -l: across all namespaces")
    add_bool(p, "--wait", default=True, help="wait until the objects are gone (default true)")
    p.add_argument("--timeout", type=parse_duration, default=60.0, metavar="DURATION",
                   help="how long to wait for the deletion to finish (default 60s)")
    p.add_argument("--grace-period", type=int, default=None, help="seconds the object gets to terminate")
    add_bool(p, "--now", help="same as --grace-period=1")
    add_bool(p, "--force", help="with --grace-period=0: delete immediately without waiting for the node")
    add_bool(p, "--ignore-not-found", help="treat a missing object as deleted")
    _output(p, help="output format: name")

    p = cmd("logs")
    p.add_argument("pod", metavar="POD|TYPE/NAME")
    p.add_argument("container_arg", nargs="?", metavar="CONTAINER")
    p.add_argument("-c", "--container", default="", help="the container to read")
    add_bool(p, "-f", "--follow", help="stream the logs")
    add_bool(p, "-p", "--previous", help="the logs of the previous, terminated container instance")
    p.add_argument("--tail", type=int, default=-1, help="lines of recent log to show (-1: all)")
    add_bool(p, "--timestamps", help="prefix each line with its timestamp")
    p.add_argument("--since", type=parse_duration, default=None, metavar="DURATION",
                   help="only logs newer than this, e.g. 5m")
    p.add_argument("--limit-bytes", type=int, default=None, help="at most this many bytes")

    p = cmd("exec")
    p.add_argument("pod", metavar="POD|TYPE/NAME")
    p.add_argument("command_words", nargs="*", metavar="COMMAND", help="the command (after --)")
    p.add_argument("-c", "--container", default="", help="the container to run in")
    add_bool(p, "-i", "--stdin", help="pass stdin to the container")
    add_bool(p, "-t", "--tty", help="stdin is a TTY")
    add_bool(p, "-q", "--quiet", help="print only what the command prints")

    p = cmd("run")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--image", required=False, default="", help="the container image")
    p.add_argument("--port", type=int, default=None, help="the port the container exposes")
    p.add_argument("-l", "--labels", default="", help="labels, e.g. app=web,tier=front (default run=NAME)")
    p.add_argument("--annotations", action="append", default=[], help="annotations, key=value; repeatable")
    p.add_argument("--env", action="append", default=[], help="environment variable KEY=VALUE; repeatable")
    p.add_argument("--restart", default="Always", help="restart policy: Always, OnFailure or Never")
    p.add_argument("--image-pull-policy", default="", help="Always, IfNotPresent or Never")
    add_bool(p, "--command", dest="use_command", help="the words after -- are the command, not the args")
    p.add_argument("args_words", nargs="*", metavar="ARG", help="arguments (after --)")
    _dry_run(p)
    _output(p, help="output format: yaml|json|name")

    p = cmd("expose")
    p.add_argument("target", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--port", default=None, help="the service port")
    p.add_argument("--target-port", default=None, help="the port (number or name) on the pods")
    p.add_argument("--type", default="", help="ClusterIP, NodePort, LoadBalancer or ExternalName")
    p.add_argument("--name", default="", help="the service's name (default: the exposed object's)")
    p.add_argument("--protocol", default="", help="TCP, UDP or SCTP (default TCP)")
    p.add_argument("--selector", default="", help="label selector for the service (default: from the object)")
    p.add_argument("-l", "--labels", default="", help="labels for the service")
    p.add_argument("--cluster-ip", default="", help="a specific cluster IP, or None for a headless service")
    _dry_run(p)
    _output(p, help="output format: yaml|json|name")

    for name in ("label", "annotate"):
        p = cmd(name)
        p.add_argument("items", nargs="*", metavar="TYPE NAME KEY=VAL KEY-")
        add_bool(p, "--overwrite", help="allow replacing existing values")
        _selector(p)
        add_bool(p, "--all", help="every object of the type in the namespace")
        add_bool(p, "-A", "--all-namespaces", help="with --all or -l: across all namespaces")
        add_bool(p, "--list", help="print the current values instead of changing them")
        p.add_argument("--resource-version", default="", help="only change the object at this version")
        _dry_run(p)
        _output(p, help="output format: yaml|json|name")

    p = cmd("api-resources")
    p.add_argument("--namespaced", type=lambda v: v.lower() in ("true", "1", "yes"), default=None,
                   help="only namespaced (true) or cluster-scoped (false) resources")
    p.add_argument("--api-group", default=None, help="only resources of this group (\"\" for core)")
    p.add_argument("--sort-by", default="", choices=["", "name", "kind"], help="sort by name or kind")
    add_bool(p, "--no-headers", help="do not print column headers")
    _output(p, help="output format: wide|name")

    p = cmd("version")
    add_bool(p, "--client", help="only the client version (no server needed)")
    _output(p, help="output format: yaml|json")

    cmd("cluster-info")
    parser.pk_commands = commands  # type: ignore[attr-defined]
    return parser


GLOBAL_VALUE_FLAGS = {"--kubeconfig", "-s", "--server", "--token", "-n", "--namespace", "--context",
                      "--request-timeout"}


def _command_index(parser: argparse.ArgumentParser, argv: list[str]) -> int | None:
    """Where the command word is: global flags (and their values) may come first."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in GLOBAL_VALUE_FLAGS:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return i if a in parser.pk_commands else None  # type: ignore[attr-defined]
    return None


def prepare_args(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Rewrite the booleans of the chosen command pflag-style (see ``flags.normalize_bools``)."""
    i = _command_index(parser, argv)
    if i is None:
        return argv
    sub = parser.pk_commands[argv[i]]  # type: ignore[attr-defined]
    return argv[:i + 1] + normalize_bools(argv[i + 1:], bool_options(sub))


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse like kubectl: flags anywhere, before or after the command and between its arguments.

    argparse fills a ``nargs="*"`` positional only once, so ``label pods --all env=test``
    would lose ``env=test``; the command's own parser is therefore run with
    ``parse_intermixed_args`` on everything but the command word (its parser
    knows the global flags too).
    """
    argv = prepare_args(parser, argv)
    i = _command_index(parser, argv)
    if i is None:
        return parser.parse_args(argv)  # help, an unknown command: argparse says what is wrong
    command = argv[i]
    sub = parser.pk_commands[command]  # type: ignore[attr-defined]
    args = sub.parse_intermixed_args(argv[:i] + argv[i + 1:])
    args.command = command
    for name in ("kubeconfig", "server", "token", "namespace", "context", "request_timeout"):
        if not hasattr(args, name):
            setattr(args, name, None)
    return args


def _split_dashdash(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
         stdin: IO[str] | None = None) -> int:
    """Run pkctl; returns the exit code (the console script passes it to ``sys.exit``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    err = stderr or sys.stderr
    out = stdout or sys.stdout
    ctx: Context | None = None
    try:
        argv, after_dashdash = _split_dashdash(argv)
        parser = build_parser()
        if not argv or argv[0] in ("help",):
            parser.print_help(out)
            return 0
        args = parse_args(parser, argv)
        args.after_dashdash = after_dashdash
        if not args.command:
            parser.print_help(out)
            return 0
        if after_dashdash and args.command not in ("run", "exec"):
            raise CLIError(f"unexpected arguments after --: {' '.join(after_dashdash)}")
        ctx = Context(args, out, err, stdin)
        module_name, _ = COMMANDS[args.command]
        module = __import__(f"pkctl.{module_name}", fromlist=["run"])
        handler = getattr(module, "run_" + args.command.replace("-", "_"), None) or module.run
        return int(handler(ctx, args) or 0)
    except ExitCode as e:
        return e.code
    except (CLIError, ApiError, ConfigError) as e:
        _safe_write(err, format_error(e, ctx.server if ctx else ""))
        return e.exit_code if isinstance(e, CLIError) else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except SystemExit as e:  # argparse --help
        return int(e.code or 0) if isinstance(e.code, int) else 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: never a traceback
        _safe_write(err, f"error: unexpected failure: {type(e).__name__}: {e}")
        return 1
    finally:
        if ctx is not None:
            try:
                ctx.close()
            except Exception:  # noqa: BLE001
                pass


def _safe_write(stream: IO[str], text: str) -> None:
    try:
        stream.write(text + "\n")
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass


def _quiet_broken_pipe() -> None:
    # Python would complain again when flushing stdout at exit.
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
