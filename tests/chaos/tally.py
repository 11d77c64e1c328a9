"""The crash-injection suite's tally: what its scenarios killed and what came of it, printed as one
summary line at the end of the run (``tests/conftest.py``; with ``-n``, each worker's tally is sent
to the controller and summed there)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


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

    def counts(self) -> dict[str, int]:
        return asdict(self)

    def add(self, counts: dict[str, Any]) -> None:
        """A worker's counts (``counts()``) added to this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + int(counts.get(f.name, 0)))


TALLY = Tally()
