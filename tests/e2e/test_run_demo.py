"""`make run`, non-interactively: scripts/run-demo.sh --check starts the control plane, demo pods, the agent
and nginx, applies examples/*.yaml, checks every route it prints, and stops everything again."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kube import free_ports
from netns import leftovers

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KROUTE_BUILD", ROOT / "build"))


def test_make_run_applies_the_examples_and_serves_them(tools: Path) -> None:  # tools: built before the demo runs
    before = set(leftovers())
    port = free_ports(1)[0]
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run-demo.sh"), str(BUILD), "--check", "--port", str(port)],
                            capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert "BAD" not in out, out
    for host in ("blue.example.com", "shop.example.com", "web.apps.example.com", "unknown.example.org"):
        assert f"Host: {host}" in out, out
    assert "Stopped:" in out
    assert set(leftovers()) == before, "the demo left network namespaces or bridges behind"
    listening = subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert not listening.strip(), f"something still listens on the demo port:\n{listening}"
