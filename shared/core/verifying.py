"""How a person checks a downloaded archive's SHA-256 on their own computer, said once: the commands
the "export ready" email (services/notifier/mail/templates/ready.*.j2) and the archive's own README.md
(services/catalog/readme.py) both name. They were written in each place and differed: the email told
Windows users ``certutil -hashfile <file> SHA256`` (cmd's), the README ``Get-FileHash … -Algorithm
SHA256`` (PowerShell's, on every current Windows, and like the others it takes the file name's
wildcard)."""

from __future__ import annotations

ARCHIVE_GLOB = "grove-export-*.zip"  # every archive's file name matches it (shared/core/keys.py names them)

# (command, where it runs), in the order they are shown
CHECKSUM_COMMANDS: tuple[tuple[str, str], ...] = (
    (f"sha256sum {ARCHIVE_GLOB}", "Linux"),
    (f"shasum -a 256 {ARCHIVE_GLOB}", "macOS"),
    (f"Get-FileHash {ARCHIVE_GLOB} -Algorithm SHA256", "Windows PowerShell"),
)


def checksum_lines() -> list[str]:
    """One line per command, the commands padded to one width and each followed by where it runs in
    brackets: ``sha256sum grove-export-*.zip  (Linux)`` (the email's block of commands)."""
    width = max(len(command) for command, _ in CHECKSUM_COMMANDS)
    return [f"{command:<{width}}  ({where})" for command, where in CHECKSUM_COMMANDS]


def checksum_phrase() -> str:
    """The commands in a sentence, each as Markdown code: `` `sha256sum …` (Linux), … or `…` (Windows
    PowerShell)`` (the archive README's)."""
    said = [f"`{command}` ({where})" for command, where in CHECKSUM_COMMANDS]
    return ", ".join(said[:-1]) + " or " + said[-1]
