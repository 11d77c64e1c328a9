"""The ``grove-export`` command as installed (``[project.scripts]``): :func:`services.cli.main` with the two
moments it cannot reach itself, before it is loaded and after it has returned.

Ctrl-C while the command loads (its modules take a few tenths of a second to import, before ``main`` runs
and before it reads the command line and settings) was a Python traceback of 20 lines ending in
``KeyboardInterrupt``; it is the same one line as any other interrupted command's, exit 130 (nothing had
been put in place yet, so there is nothing to take back). And once the command is over — its output
written, its exit code chosen — the interpreter takes a tenth of a second more to shut down, after
putting SIGINT's default back: Ctrl-C or SIGTERM then ended the process by the signal, with no line,
and ``&& next-step`` saw 130 for a command that had finished. The signals are ignored for that shutdown:
what the command said and its exit code stand.

Standard library only, on purpose: whatever this module imports is loaded before Ctrl-C is one line."""

from __future__ import annotations

import re
import signal
import sys

# Ctrl-C is how these stop (services.cli.UNTIL_CTRL_C): exit 0, before they began as after
_UNTIL_CTRL_C = frozenset({"run", "serve"})


def main() -> None:
    try:
        from services.cli import main as command

        command()
    except KeyboardInterrupt:  # landed before the command's own handling: it had not begun
        name = _command_named(sys.argv[1:])
        if name not in _UNTIL_CTRL_C:
            print(f"grove-export: interrupted; {name or 'the command'} did not finish", file=sys.stderr)
            sys.exit(130)
    finally:
        _over()


# How long the interpreter's shutdown may take once the command is over (it takes a tenth of a second):
# past it SIGALRM ends the process, so a shutdown that hangs (a flush into a pipe nobody reads, a thread
# that does not end) is not one only SIGKILL can end, with the signals ignored.
SHUTDOWN_BOUND_S = 10


def _over() -> None:
    """The command is over: a signal from now on would only replace its exit code with the signal's."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(SHUTDOWN_BOUND_S)


def _command_named(argv: list[str]) -> str | None:
    """The command the line names (``grove-export --data DIR backup X``: ``backup``), for the line; a word
    that is not a plain command name is not printed (it could hold anything)."""
    words = iter(argv)
    for word in words:
        if word == "--data":
            next(words, None)
        elif not word.startswith("-"):
            return word if re.fullmatch(r"[a-z][a-z-]{0,31}", word) else None
    return None
