"""What a person who types a command or a setting slightly wrong is told: the help that lists the right
option, the option they probably meant, and (first, for every command) the GROVE_* variable ignored as
nearly a setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.devtools.stack.natsserver import free_port


def bare(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a new terminal: no GROVE_* in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_mistyped_option_names_the_commands_own_help_and_the_option_meant(tmp_path: Path) -> None:
    """Seen: `grove-export janitor --dryrun` said "(`grove-export --help` lists the options)", and
    that help lists the commands, not janitor's --dry-run."""
    cases = {("janitor", "--dryrun"): "unrecognized arguments: --dryrun (did you mean --dry-run?) "
                                      "(`grove-export janitor --help` lists the options)",
             ("exports", "--olderthan", "2h"): "unrecognized arguments: --olderthan 2h (did you mean --older-than?) "
                                           "(`grove-export exports --help` lists the options)",
             ("show", "exp_1", "--jsn"): "unrecognized arguments: --jsn (did you mean --json?) "
                                         "(`grove-export show --help` lists the options)",
             ("exports", "--bogus"): "unrecognized arguments: --bogus (`grove-export exports --help` lists the options)"}
    for args, line in cases.items():
        out = bare(*args, cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: {line}\n"), (args, out.stderr)
    assert not (tmp_path / "var").exists()  # refused before anything was made


def test_a_mistyped_setting_is_named_on_stderr_before_anything_else(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {
        "GROVE_NATS_URL": f"nats://127.0.0.1:{free_port()}", "GROVE_CONCURENCY": "8"}
    out = subprocess.run([sys.executable, "-m", "services.cli", "janitor"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.stderr.splitlines()[0] == ("grove-export: warning: GROVE_CONCURENCY is no setting and is ignored: "
                                          "did you mean GROVE_CONCURRENCY?"), out.stderr


def test_token_run_from_another_folder_says_to_pass_data(tmp_path: Path) -> None:
    """Seen: `grove-export token …` run outside the clone said to start `grove-export serve --data var`
    there — a second stack — while the person's stack ran in the clone: --data was not mentioned."""
    out = bare("token", "--tenant", "t", "--user", "u", "--email", "a@b.co", "--username", "n", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, "grove-export: GROVE_JWT_SECRET is not set and there is no local stack "
                                               "in var/: pass --data DIR for a stack started in another folder (the "
                                               "clone's var/), start one with `make serve`, or set GROVE_JWT_SECRET\n"), \
        out.stderr
    assert not (tmp_path / "var").exists()


def test_assemble_names_a_store_that_is_not_there_and_why_a_snapshot_may_be_gone(tmp_path: Path) -> None:
    """Seen: `grove-export assemble --snapshot KEY` run outside the clone said "no snapshot at KEY":
    there was no store at all (var/store is relative). And in the clone, with the key `events` printed
    for a finished export, the same line with no word that the janitor removes such a snapshot."""
    key = "exports/t1/exp_1/work/snapshot.jsonl"
    out = bare("assemble", "--snapshot", key, "--out", "a.zip", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, f"grove-export: the filesystem store {tmp_path}/var/store does not exist "
                                               "(GROVE_STORE_ROOT; for a local stack, run in its folder or pass --data "
                                               "DIR): nothing was assembled\n"), out.stderr
    (tmp_path / "var" / "store" / "grove-exports").mkdir(parents=True)
    out = bare("assemble", "--snapshot", key, "--out", "a.zip", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, f"grove-export: no snapshot at {key!r} in bucket 'grove-exports' (a "
                                               "finished export's snapshot is removed with its other work objects: "
                                               "by the canceller at once, by the janitor once complete, or GROVE_ARCHIVE_TTL_DAYS after it failed)\n"), \
        out.stderr
    assert not (tmp_path / "a.zip").exists()


def test_replay_refuses_to_swap_the_read_model_under_the_running_local_stack(tmp_path: Path) -> None:
    """Seen: `grove-export replay` with `make serve` up printed "… exports rebuilt from the log" and
    exit 0; the README says to stop the gateway first, since a running one keeps reading the file it
    opened (the rebuilt one is not served, and replay deleted the live file's -wal and -shm).
    Seen next: the refusal said "Stop the stack …, then replay", and with the stack stopped replay says
    no local stack is running (it needs the stack's NATS): the advice led nowhere. It now names what
    works — the gateway rebuilds a missing read model from the log as it starts."""
    import json

    data = tmp_path / "var"
    data.mkdir()
    model = data / "read-model.db"
    model.write_bytes(b"")  # the running gateway's file: left as it is
    (data / "stack.json").write_text(json.dumps({  # a stack whose pid is alive: this test's own
        "nats_url": "nats://127.0.0.1:1", "pid": os.getpid(), "env": {"GROVE_READ_MODEL_DB": str(model)}}))
    out = bare("replay", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, f"grove-export: the local stack in {data} is running, and its gateway "
                                               f"keeps reading the read model {model} it opened: a rebuilt one would "
                                               "not be served. Stop the stack (Ctrl-C where `make serve` runs), "
                                               f"delete {model} (and its -wal and -shm, when there) and start it "
                                               "again: its gateway rebuilds a missing read model from the log as it "
                                               "starts (replay needs the stack's NATS, so it cannot run once the stack "
                                               "is stopped); or set GROVE_READ_MODEL_DB to rebuild into another "
                                               "file\n"), out.stderr
    assert sorted(p.name for p in data.iterdir()) == ["read-model.db", "stack.json"]


def test_a_missing_file_or_folder_argument_is_named_as_the_readme_and_help_name_it(tmp_path: Path) -> None:
    """Seen: the README and `--help`'s command list say `verify ARCHIVE` and `backup DIR`; left out,
    the line said "required: archive" and "required: dir", in the case of no other argument's name."""
    for command, name in (("verify", "ARCHIVE"), ("import", "ARCHIVE"), ("backup", "DIR"), ("restore", "DIR")):
        out = bare(command, *(["--tenant", "t"] if command == "import" else []), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: the following arguments are required: {name} "
                                                   f"(`grove-export {command} --help` lists the options)\n"), out.stderr


def test_every_commands_help_names_the_data_folder_as_the_readme_does() -> None:
    """Seen: the README says `--data DIR` for every command (`demo … (--data DIR, --port N)`), and so
    did every command's --help but `serve --help` and `demo --help`, which said `--data DATA`."""
    import argparse

    from services.cli import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = [name for name, command in sub.choices.items()
                if any("--data" in action.option_strings for action in command._actions)]
    assert {"serve", "demo", "seed", "exports"} <= set(commands)
    for command in commands:  # the text --help prints, made in this process (a process each took 7 s)
        text = sub.choices[command].format_help()
        assert "--data DIR" in text and "--data DATA" not in text, (command, text)


def test_import_run_outside_the_stacks_folder_names_the_content_database(tmp_path: Path) -> None:
    """Seen: `grove-export import ARCHIVE --tenant T` run in a folder with no var/ said "the import claim
    beside var/content.db cannot be taken: [Errno 2] No such file or directory: 'var/content.db.imports'"."""
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))  # never read: the database is asked about first
    out = bare("import", str(archive), "--tenant", "t1", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, "grove-export: the content database var/content.db cannot be made: its "
                                               "folder var does not exist (GROVE_CONTENT_DSN; for a local stack, run in "
                                               "its folder or pass --data DIR): nothing was imported\n"), out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_a_mistyped_command_or_choice_names_the_one_probably_meant(tmp_path: Path) -> None:
    """Seen: `grove-export shwo exp_…` and `exports --step assembler` listed every choice there is and
    left the person to spot the one they meant."""
    for args, start, meant in ((("shwo", "exp_1"), "argument command: invalid choice: 'shwo'", "show"),
                               (("run", "gatway"), "argument service: invalid choice: 'gatway'", "gateway"),
                               (("exports", "--step", "assembler"), "argument --step: invalid choice: 'assembler'",
                                "assemble"),
                               (("exports", "--status", "Complete"), "argument --status: invalid choice: 'Complete'",
                                "complete")):
        out = bare(*args, cwd=tmp_path)
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
        assert out.stderr.startswith(f"grove-export: {start}; did you mean '{meant}'? (choose from "), out.stderr
    out = bare("frobnicate", cwd=tmp_path)  # nothing close: the list alone
    assert out.stderr.startswith("grove-export: argument command: invalid choice: 'frobnicate' (choose from 'run', "), \
        out.stderr


def test_the_clone_given_as_data_folder_points_at_its_var(tmp_path: Path) -> None:
    """Seen: `grove-export exports --data ~/grove-export` (the clone, not its var/) said "no local stack
    is running in ~/grove-export/" while one ran in ~/grove-export/var."""
    import json

    clone = tmp_path / "clone"
    (clone / "var").mkdir(parents=True)
    (clone / "var" / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:1", "pid": os.getpid()}))
    out = bare("exports", "--data", str(clone), cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, f"grove-export: no local stack is running in {clone}/ (its var/ holds "
                                               f"one: pass --data {clone}/var) and GROVE_NATS_URL is not set: start one "
                                               "with `make serve`, pass --data DIR, or set GROVE_NATS_URL\n"), out.stderr


def test_what_was_typed_is_quoted_with_its_line_breaks_and_escapes_as_escapes(tmp_path: Path) -> None:
    """Seen: a line break pasted into an argument or --data made two lines of the one-line message, and
    an escape sequence in it reached the terminal (ESC [2J clears it): `grove-export exports $'a\\nb'`
    said "unrecognized arguments: a", then "b (…)"; `--data` quoted the same way by the "no local
    stack" line and the two-folders line (a bidi control reordered it)."""
    cases = {("exports", "a\nb"): "unrecognized arguments: a\\nb",
             ("exports", "--data", "\x1b[2Ja\nb"): "no local stack is running in \\x1b[2Ja\\nb/",
             ("--data", "x", "exports", "--data", "y\u202ez"): "two data folders given: --data x and --data y\\u202ez"}
    for args, says in cases.items():
        out = bare(*args, cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, (args, out.stderr)
        assert says in out.stderr and "\x1b" not in out.stderr and "\u202e" not in out.stderr, (args, out.stderr)


def test_an_option_given_twice_with_two_values_is_refused(tmp_path: Path) -> None:
    """Seen: argparse kept the last value, silently — `cancel EXP --tenant a --tenant b` acted on tenant
    b's export, `--reason x --reason y` recorded y, and `exports --data A --data B` asked B's stack while
    `--data A exports --data B` was refused as two data folders. The same value twice is no conflict."""
    cases = {("cancel", "exp_1", "--tenant", "a", "--tenant", "b", "--reason", "x"):
             "--tenant given twice, 'a' and 'b': give it once (`grove-export cancel --help` lists the options)",
             ("cancel", "exp_1", "--reason", "x", "--reason=y"):
             "--reason given twice, 'x' and 'y': give it once (`grove-export cancel --help` lists the options)",
             ("exports", "--data", "A", "--data", "B"):
             "--data given twice, 'A' and 'B': give it once (`grove-export exports --help` lists the options)",
             ("exports", "--limit", "5", "--limit", "6"):
             "--limit given twice, 5 and 6: give it once (`grove-export exports --help` lists the options)"}
    for args, line in cases.items():
        out = bare(*args, cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: {line}\n"), (args, out.stderr)
    same = bare("exports", "--limit", "5", "--limit", "05", "--data", "d", "--data", "d", cwd=tmp_path)
    assert same.returncode == 2 and "no local stack is running in d/" in same.stderr, same.stderr


def test_a_commands_option_typed_before_the_command_is_said_to_go_after_it(tmp_path: Path) -> None:
    """Seen: `grove-export --dry-run janitor` said "unrecognized arguments: --dry-run (did you mean
    --dry-run?)": the option asked for is the very one typed, only before the command (where only --data
    goes). Say where it goes instead."""
    cases = {("--dry-run", "janitor"): "unrecognized arguments: --dry-run (an option of janitor goes after it: "
                                       "`grove-export janitor --dry-run`) (`grove-export janitor --help` lists the options)",
             ("--json", "exports", "--limit", "2"): "unrecognized arguments: --json (an option of exports goes after it: "
                                                    "`grove-export exports --json --limit 2`) (`grove-export exports --help` lists "
                                                    "the options)"}
    for args, line in cases.items():
        out = bare(*args, cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: {line}\n"), (args, out.stderr)
        assert "did you mean" not in out.stderr
    typo = bare("janitor", "--dryrun", cwd=tmp_path)  # a near miss after the command is still guessed
    assert "(did you mean --dry-run?)" in typo.stderr, typo.stderr


def test_version_prints_the_generator_an_archive_names(tmp_path: Path) -> None:
    """Seen: `grove-export --version` said "the following arguments are required: command", exit 2; an
    archive's README names the tool that made it ("Made by: grove-export 0.2.0"), a person checking it
    with their own copy of the tool had no way to ask which one that is."""
    from shared import __version__

    out = bare("--version", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"grove-export {__version__}\n", ""), out
    assert not (tmp_path / "var").exists()


def test_verify_given_several_archives_by_the_emails_wildcard_says_so(tmp_path: Path) -> None:
    """The email tells the person to run `grove-export verify grove-export-*.zip --sha256 …` where they
    saved the archive. Seen: with a second archive there (another export, or the browser's "… (1).zip"
    of a second download) that said "unrecognized arguments: grove-export-autumn-2026-12-06.zip", exit 2,
    which names neither the wildcard nor what to do. One line naming both files, nothing checked."""
    for name in ("grove-export-autumn-2026-12-06.zip", "grove-export-autumn-2026-12-06 (1).zip"):
        (tmp_path / name).write_bytes(b"PK")
    out = bare("verify", "grove-export-autumn-2026-12-06 (1).zip", "grove-export-autumn-2026-12-06.zip",
               "--sha256", "0" * 64, cwd=tmp_path)
    assert (out.returncode, out.stdout) == (2, ""), out
    assert out.stderr == ("grove-export: verify checks one archive, and 2 were given ('grove-export-autumn-2026-12-06 "
                          "(1).zip', 'grove-export-autumn-2026-12-06.zip'; a wildcard such as grove-export-*.zip "
                          "matched several?): name the one the SHA-256 is for\n"), out.stderr


def test_the_command_named_for_an_option_typed_before_it_keeps_what_else_was_typed(tmp_path: Path) -> None:
    """Seen: `grove-export --sha256=HEX verify a.zip` was told to run `grove-export verify --sha256=HEX`:
    the archive left out, and pasted as told that said "the following arguments are required: ARCHIVE";
    `grove-export --data D --json show exp_1` lost exp_1 and --data D the same way. The command named is
    the one typed with the option moved after the command, and run as named it parses."""
    import re
    import shlex

    (tmp_path / "a b.zip").write_bytes(b"PK")
    digest = "0" * 64
    cases = {("--sha256=" + digest, "verify", "a b.zip"): ["grove-export", "verify", "--sha256=" + digest, "a b.zip"],
             ("--data", "d", "--json", "show", "exp_1"): ["grove-export", "--data", "d", "show", "--json", "exp_1"]}
    for args, meant in cases.items():
        out = bare(*args, cwd=tmp_path)
        named = re.search(r"goes after it: `([^`]*)`", out.stderr)
        assert out.returncode == 2 and named, out.stderr
        assert shlex.split(named.group(1)) == meant, (args, named.group(1))
    again = bare(*meant[1:], cwd=tmp_path)  # the last one, run as named: parsed, then refused for its stack
    assert "unrecognized" not in again.stderr and "required" not in again.stderr, again.stderr
    verify = bare("verify", "--sha256=" + digest, "a b.zip", cwd=tmp_path)
    assert verify.returncode == 1 and "archive NOT OK" in verify.stdout, verify
    # typed after the command and a `--`, a word is an argument: never "goes after it", nor moved
    after = bare("exports", "--", "--json", cwd=tmp_path)
    assert after.stderr == ("grove-export: unrecognized arguments: -- --json (`grove-export exports --help` lists "
                            "the options)\n"), after.stderr
