"""Ctrl-C at the two edges of a command, run as the installed ``grove-export`` runs it (the entry point
``[project.scripts]`` names): while it loads, before ``main`` handles signals, and once it is over, while
the interpreter shuts down after putting SIGINT's default back.

Seen: `grove-export exports` interrupted a tenth of a second after it started printed a 20-line traceback
ending in KeyboardInterrupt; interrupted as its output appeared it ended by the signal (exit -2, 130 in
a shell) with no line at all, on every try — `grove-export verify A.zip && next` stopped after "archive OK"."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


# The signal is sent as the CLI's module starts to import (an audit hook sees the import begin): the moment
# a person pressing Ctrl-C right after Enter hits, before main() handles any signal
ARM = ("import os, signal, sys\n"
       "def hook(event, args):\n"
       "    if event == 'import' and args[0] == 'services.cli':\n"
       "        os.kill(os.getpid(), signal.SIGINT)\n"
       "sys.addaudithook(hook)\n")


def entry_point() -> str:
    """Python that runs the command as its installed script does (pip writes exactly this)."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["grove-export"]
    module, _, func = target.partition(":")
    return f"import sys\nfrom {module} import {func}\nsys.exit({func}())\n"


def popen(code: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # SIGINT as a terminal's Ctrl-C delivers it (a background job would ignore it)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_once_the_command_is_over_leaves_its_exit_code_and_its_line(tmp_path: Path) -> None:
    not_a_zip = tmp_path / "a.zip"
    not_a_zip.write_bytes(b"hello\n")
    for _ in range(5):  # it ended by the signal every time: 5 of 5
        proc = popen(entry_point(), "verify", str(not_a_zip), cwd=tmp_path)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # its output is written as it ends (a pipe: flushed at once)
            lines.append(line)
            if line.startswith("archive NOT OK"):
                proc.send_signal(signal.SIGINT)  # the command is over: the interpreter is shutting down
                break
        _, err = proc.communicate(timeout=30)
        assert lines and lines[-1].startswith("archive NOT OK"), (lines, err)
        # its own exit (1: the archive is damaged), or, had it landed before main() returned, the interrupted
        # line: never the signal's death without a word
        assert (proc.returncode, err) in {(1, ""), (130, "grove-export: interrupted; verify did not finish\n")}, \
            (proc.returncode, err)


def test_ctrl_c_while_the_command_loads_is_the_one_interrupted_line(tmp_path: Path) -> None:
    proc = popen(ARM + entry_point(), "--data", str(tmp_path / "var"), "exports", cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (130, "", "grove-export: interrupted; exports did not finish\n"), \
        (proc.returncode, out, err)
    assert not (tmp_path / "var").exists()  # nothing was begun


def test_ctrl_c_while_serve_loads_stops_it_as_ctrl_c_always_does(tmp_path: Path) -> None:
    proc = popen(ARM + entry_point(), "serve", "--data", str(tmp_path / "var"), cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, "", ""), (proc.returncode, out, err)  # how serve is stopped
    assert not (tmp_path / "var").exists()


def test_a_shutdown_that_hangs_once_the_command_is_over_still_ends_without_sigkill(tmp_path: Path) -> None:
    """Found by the review of the day: once the command is over the entry point ignores SIGINT, SIGTERM
    and SIGHUP (a late one would only replace its exit code), so a shutdown that hung — here a thread
    that never ends, as a flush into a pipe nobody reads would — could only be ended by SIGKILL. The
    shutdown is bounded now: SIGALRM ends it (the bound shortened to 1 s here), a SIGTERM meanwhile
    still changes nothing."""
    import time

    script = tmp_path / "hang.py"
    script.write_text(
        "import threading\n"
        "import services.cli, services.console as console\n"
        "console.SHUTDOWN_BOUND_S = 1\n"
        "over = console._over\n"
        "def said_over():\n"
        "    over()\n"
        "    print('over', flush=True)  # the command has returned: the signals are ignored from here on\n"
        "console._over = said_over\n"
        "def command():\n"
        "    threading.Thread(target=threading.Event().wait).start()  # not a daemon: shutdown waits for it\n"
        "services.cli.main = command\n"
        "console.main()\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "over\n"
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=20)
        assert code == -signal.SIGALRM and time.monotonic() - started < 5, code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
