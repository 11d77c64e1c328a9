"""Argument parsing for ``grove-export``: a refused argument is one line on stderr and exit 2,
like every other bad input (argparse's own output is a usage block, then the error)."""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


def complain(line: str) -> None:
    """``grove-export: LINE`` on stderr, with its control and bidi characters as escapes: a line quotes
    what was typed (an argument, --data, a setting's value), and a line break in it made two lines, an
    escape sequence reached the terminal (`grove-export exports $'a\\nb'`)."""
    from shared.core.printable import printable

    print(printable(f"grove-export: {line}"), file=sys.stderr)


class _Once(argparse.Action):
    """An option that takes one value, given twice with two values, is refused: argparse kept the last
    one, silently — `cancel EXP --tenant a --tenant b` acted on tenant b's export, `exports --data A
    --data B` asked B's stack (while `--data A exports --data B` was refused as two data folders)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        given = namespace.__dict__.setdefault("_given_once", {})
        if self.option_strings and self.dest in given and given[self.dest] != values:
            parser.error(f"{self.option_strings[-1]} given twice, {given[self.dest]!r} and {values!r}: give it once")
        given[self.dest] = values
        setattr(namespace, self.dest, values)  # what argparse's own 'store' does


class Parser(argparse.ArgumentParser):
    """argparse, with each error as one line: ``grove-export: --port must be 1-65535, not 99999``.
    Subcommands' parsers are of this class too (``add_subparsers`` uses the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in (None, "store"):  # every option that stores one value
            self.register("action", name, _Once)

    def error(self, message: str) -> NoReturn:
        choice = re.fullmatch(r"(argument [^:]+: invalid choice: (.*?)) (\(choose from (.*)\))", message)
        if choice:  # a typo of a command or a choice: name the one probably meant before the whole list
            given, options = choice.group(2).strip("'"), re.findall(r"'([^']*)'", choice.group(4))
            meant = difflib.get_close_matches(given, options, n=1) or \
                difflib.get_close_matches(given.lower(), options, n=1)
            if meant:
                message = f"{choice.group(1)}; did you mean {meant[0]!r}? {choice.group(3)}"
        flag = re.fullmatch(r"argument ([^:]+): (must .*)", message)  # our own range checks
        line = f"{flag.group(1).split('/')[-1]} {flag.group(2)}" if flag else \
            f"{message} (`{self.prog} --help` lists the options)"
        complain(line)
        sys.exit(2)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """An option no command knows is refused by the command it was given to, naming that command's
        ``--help`` and the option probably meant (argparse refuses it at the top, whose help lists
        commands: ``janitor --dryrun`` pointed at ``grove-export --help``)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            tokens = list(sys.argv[1:] if args is None else args)
            owner: argparse.ArgumentParser = self
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):  # the command given, if any
                    owner = action.choices.get(getattr(parsed, action.dest or "", None) or "", self)
            options = [o for a in owner._actions for o in a.option_strings if o.startswith("--")]
            at = self._command_at(tokens, owner.prog.split()[-1]) if owner is not self else len(tokens)
            # the command's own option, typed before the command (`grove-export --dry-run janitor`): it was
            # "did you mean --dry-run?", the very option typed; say where it goes instead. Only what was typed
            # before it: after `--` (`exports -- --json`) a word is an argument, not a misplaced option.
            misplaced = [x for x in tokens[:at] if x in extras and x.split("=", 1)[0] in options] \
                if owner is not self else []
            typed = extras[:extras.index("--")] if "--" in extras else extras
            meant = [m for x in typed if x.startswith("--") and x not in misplaced
                     for m in difflib.get_close_matches(x.split("=", 1)[0], options, n=1)]
            owner.error(f"unrecognized arguments: {' '.join(extras)}"
                        + (f" (did you mean {', '.join(meant)}?)" if meant else "")
                        + (f" (an option of {owner.prog.split()[-1]} goes after it: "
                           f"`{self._moved(tokens, at, misplaced)}`)" if misplaced else ""))
        return parsed

    def _command_at(self, tokens: list[str], command: str) -> int:
        """Where in ``tokens`` the command is: the first word ``command`` that is not an option's value
        (`--data exports exports`)."""
        takes_value = [o for a in self._actions if a.nargs != 0 for o in a.option_strings if o.startswith("--")]
        i = 0
        while i < len(tokens) and tokens[i] != command:
            token = tokens[i]
            if token.startswith("--") and token != "--" and "=" not in token and \
                    any(o.startswith(token) for o in takes_value):  # --data DIR (or --dat DIR): DIR is its value
                i += 1
            i += 1
        return i

    def _moved(self, tokens: list[str], at: int, misplaced: list[str]) -> str:
        """The command line typed, with the options in ``misplaced`` (typed before the command, at ``at``)
        moved right after it: everything else stays (`--sha256=HEX verify a.zip` was told `verify
        --sha256=HEX`, without the archive, which fails as pasted)."""
        import shlex

        left, before = list(misplaced), []
        for token in tokens[:at]:
            if token in left:
                left.remove(token)
            else:
                before.append(token)
        return shlex.join([self.prog, *before, *tokens[at:at + 1], *misplaced, *tokens[at + 1:]])


def number_in(low: float, high: float | None = None, kind: type[int] | type[float] = int) -> Callable[[str], float]:
    """An argparse ``type``: a whole number (or, with ``kind=float``, any number) from ``low`` to
    ``high`` (no upper bound when None)."""
    def parse(text: str) -> float:
        span = f"{low:g}-{high:g}" if high is not None else f"{low:g} or more"
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole number' if kind is int else 'a number'} {span}, not {text!r}") from None
        # NaN too; and never infinity, which no bound of ours means (erase-tenant --wait inf waited for ever).
        # A float's only: math.isfinite of a whole number too big for a float raised OverflowError, a traceback.
        if not (low <= value and (high is None or value <= high)) or (isinstance(value, float)
                                                                       and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be {span}, not {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def an_id(text: str) -> str:
    """An argparse ``type``: a tenant or export id (one NATS subject token)."""
    from shared.core.events import is_valid_id

    if not is_valid_id(text):
        raise argparse.ArgumentTypeError(f"must match [A-Za-z0-9_-]{{1,64}}, not {text!r}")
    return text


def an_age(text: str) -> str:
    """An argparse ``type``: an age like ``90s``, ``15m``, ``2h``, ``3d`` (kept as text; the command
    turns it into a duration)."""
    from services.operator.decide import MAX_AGE_DAYS, parse_age

    try:
        parse_age(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"must be an age like 90s, 15m, 2h or 3d, up to {MAX_AGE_DAYS}d: {e}") from None
    return text



def a_path(what: str) -> Callable[[str], str]:
    """An argparse ``type``: a file or folder argument (``what``: "file" or "folder"). An empty one
    (``--data "$DATA"``, ``verify "$ZIP"`` with the variable unset) was read as the current folder:
    `seed --data ''` seeded into it (saying "no local stack is running in /"), `verify ''` said
    " is a folder, not an archive file"."""
    def parse(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"must name a {what}, not '' (an empty argument: an unset shell "
                                             f"variable?)")
        return text
    parse.__name__ = what
    return parse


# Every level name logging takes (WARN and CRITICAL ran before the check; FATAL is CRITICAL's other name)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL")


def a_log_level(text: str) -> str:
    """An argparse ``type``: a log level as the help names it, in any case (``debug`` too). Given straight
    to logging, ``--log-level debug`` or a typo was a 20-line traceback ending in "ValueError: Unknown
    level: 'debug'", exit 1."""
    if text.strip().upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {text!r}")
    return text.strip().upper()


def a_sha256(text: str) -> str:
    """An argparse ``type``: a SHA-256 as the email, the page and the API give it (64 hex digits; case
    and surrounding space as pasted do not matter). An empty one would check nothing, a cut one would
    call a sound archive damaged: both are the command line's fault."""
    digest = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        shown = repr(text) if len(text) <= 80 else repr(text[:77]) + "…"
        raise argparse.ArgumentTypeError(f"must be the archive's SHA-256, 64 hex digits (from the email, the export "
                                         f"page or the API's sha256), not {shown} ({len(digest)} characters)")
    return digest
