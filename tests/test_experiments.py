"""The sweep scripts in experiments/ refuse bad input before they train anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "experiments" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


@pytest.mark.parametrize("script", ["sample_efficiency.sh", "robosuite_lite.sh"])
def test_unknown_method_lists_the_known_ones(script):
    out = run(script, "nope", "5:0")
    assert out.returncode == 2 and "unknown method 'nope'; known: bc, diffusion, video_policy" in out.stderr


def test_unknown_protocol_lists_the_known_ones():
    out = run("sample_efficiency.sh", "bc", "5:0", PROTOCOL="nope")
    assert out.returncode == 2 and "known: metaworld-lite, robosuite-lite" in out.stderr


def test_missing_dataset_is_named(tmp_path):
    out = run("sample_efficiency.sh", "bc", "5:0", DATA=str(tmp_path / "absent"))
    assert out.returncode == 2 and f"no dataset at {tmp_path / 'absent'}" in out.stderr
