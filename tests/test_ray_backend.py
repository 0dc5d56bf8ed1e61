"""backend=ray on a real local Ray instance: the same rows as the local runner, and resume after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from eval.runner import run
from eval_helpers import without_timings, write_protocol

ray = pytest.importorskip("ray", reason="backend=ray needs `pip install -e .[ray]` (the test extra installs it)")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_rows_equal_the_local_runners(tmp_path, local_ray):
    protocol = write_protocol(tmp_path, splits=["test", "camera"], episodes=3)
    local = run(protocol, "random", run_dir=tmp_path / "local", num_envs=2, vector="sync", progress=False,
                videos_per_cell=0)
    on_ray = run(protocol, "random", run_dir=tmp_path / "ray", backend="ray", progress=False, videos_per_cell=0)
    assert len(on_ray) == 6
    pd.testing.assert_frame_equal(without_timings(on_ray), without_timings(local))
    pd.testing.assert_frame_equal(without_timings(pd.read_parquet(tmp_path / "ray" / "episodes.parquet")),
                                  without_timings(local))


def test_a_killed_ray_run_resumes_without_loss(tmp_path):
    """SIGKILL the whole vp-eval process group (driver and Ray workers) mid-run; the same command finishes
    the run, each episode once, and finished episodes are not rerun."""
    protocol = write_protocol(tmp_path, "rayk", splits=["test", "camera"], episodes=6, max_steps=20)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "eval.cli", "policy=random", f"protocol={protocol}", f"run_dir={run_dir}",
           "backend=ray", "progress=false", "videos_per_cell=0"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_NUM_CPUS": "2"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    shards = run_dir / "shards"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [pd.read_parquet(p) for p in shards.glob("*/episodes.parquet")] if shards.is_dir() else []
        if sum(len(d) for d in done) >= 2:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = pd.concat([pd.read_parquet(p) for p in shards.glob("*/episodes.parquet")])
    assert 2 <= len(before) < 12, "the run finished before it could be killed; make the protocol longer"

    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    after = pd.read_parquet(run_dir / "episodes.parquet")
    assert len(after) == 12 and not after.duplicated(["task", "split", "level", "episode"]).any()
    kept = after.merge(before[["split", "episode", "finished_at"]], on=["split", "episode"], suffixes=("", "_before"))
    assert len(kept) == len(before) and (kept["finished_at"] == kept["finished_at_before"]).all()
    fresh = run(protocol, "random", run_dir=tmp_path / "fresh", num_envs=2, vector="sync", progress=False,
                videos_per_cell=0)
    pd.testing.assert_frame_equal(without_timings(after), without_timings(fresh))
