"""Every grove-export command says, first, which GROVE_* variable it ignores as nearly a setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.devtools.stack.natsserver import free_port


def test_a_mistyped_setting_is_named_on_stderr_before_anything_else(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {
        "GROVE_NATS_URL": f"nats://127.0.0.1:{free_port()}", "GROVE_CONCURENCY": "8"}
    out = subprocess.run([sys.executable, "-m", "services.cli", "janitor"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.stderr.splitlines()[0] == ("grove-export: warning: GROVE_CONCURENCY is no setting and is ignored: "
                                          "did you mean GROVE_CONCURRENCY?"), out.stderr
