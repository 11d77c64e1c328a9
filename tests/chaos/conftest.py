"""The crash-injection suite's tally, printed as one summary line at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class Tally:
    kills: int = 0
    exports: int = 0
    complete: int = 0
    corrupt: int = 0
    orphans: int = 0
    reuploaded: int = 0

    def line(self) -> str:
        return (f"chaos: {self.kills} kills, {self.exports} exports, {self.complete} complete, "
                f"{self.corrupt} corrupt, {self.orphans} orphan uploads, {self.reuploaded} bytes re-uploaded")


TALLY = Tally()


@pytest.fixture
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.exports:
        terminalreporter.write_line(TALLY.line())
