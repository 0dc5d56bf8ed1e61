"""The rollout runner: deterministic rows, resume after a real kill, failures recorded per episode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from eval_helpers import without_timings, write_protocol

from eval.policies import ExpertPolicy, Policy, RandomPolicy
from eval.protocol import load_protocol
from eval.runner import ROW_COLUMNS, RunError, run


def test_same_policy_twice_gives_identical_rows(tmp_path):
    """In-process with one slot vs two worker processes: same rows bar timings, videos written."""
    protocol = write_protocol(tmp_path)
    a = run(protocol, "expert", run_dir=tmp_path / "a", num_envs=1, vector="sync", progress=False)
    b = run(protocol, "expert", run_dir=tmp_path / "b", num_envs=2, vector="async", progress=False)
    assert list(a.columns) == ROW_COLUMNS and len(a) == 4
    pd.testing.assert_frame_equal(without_timings(a), without_timings(b))
    assert (a["error"] == "").all() and a["seed"].nunique() == 2  # camera reuses test's seeds
    assert a["steps"].between(1, 15).all()
    videos = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b" / "videos").rglob("*.mp4"))
    assert [str(v) for v in videos] == ["videos/reach-v3/camera_L2/ep000.mp4", "videos/reach-v3/camera_L2/ep001.mp4",
                                        "videos/reach-v3/test/ep000.mp4", "videos/reach-v3/test/ep001.mp4"]
    manifest = (tmp_path / "b" / "manifest.json").read_text()
    assert '"sha256"' in manifest and '"mujoco"' in manifest and '"status": "finished"' in manifest


class FailsOnOneEpisode(Policy):
    """The expert, except that it raises on camera episode 1."""

    privileged = True  # it drives the expert, which reads the simulator state

    def __init__(self):
        self.inner = ExpertPolicy()
        self.spec, self.checkpoint_hash = "test:fails-on-one", "0" * 64

    def act(self, obs, infos):
        for info in infos:
            if info["split"] == "camera" and info["episode"] == 1 and info["steps"] >= 3:
                raise RuntimeError("policy exploded")
        return self.inner.act(obs, infos)


def test_policy_exception_is_recorded_and_the_run_goes_on(tmp_path):
    rows = run(write_protocol(tmp_path), FailsOnOneEpisode(), run_dir=tmp_path / "r", num_envs=2,
               vector="sync", progress=False, videos_per_cell=0)
    assert len(rows) == 4
    bad = rows[rows["error"] != ""]
    assert len(bad) == 1 and bad.iloc[0]["split"] == "camera" and bad.iloc[0]["episode"] == 1
    assert "RuntimeError: policy exploded" in bad.iloc[0]["error"] and not bad.iloc[0]["success"]
    assert bad.iloc[0]["steps"] == 3


def test_simulator_exception_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    from vp_envs.metaworld_env import MetaWorldEnv

    real_step = MetaWorldEnv.step

    def flaky_step(self, action):
        if self.split == "test" and self._seed is not None and self._steps == 5:
            raise FloatingPointError("simulator blew up")
        return real_step(self, action)

    class Recording(RandomPolicy):
        seen: set = set()

        def act(self, obs, infos):
            self.seen.update(k for info in infos for k in info)
            return super().act(obs, infos)

    monkeypatch.setattr(MetaWorldEnv, "step", flaky_step)
    policy = Recording()
    rows = run(write_protocol(tmp_path), policy, run_dir=tmp_path / "r", num_envs=2, vector="sync",
               progress=False, videos_per_cell=0)
    # a policy under test sees the instruction and bookkeeping, not the state, reward, success or split
    assert {"instruction", "seed", "slot"} <= policy.seen
    assert not policy.seen & {"privileged_state", "reward", "return", "success", "task", "split", "level"}
    by_split = rows.groupby("split")["error"].apply(lambda e: (e != "").sum())
    assert by_split["test"] == 2 and by_split["camera"] == 0
    assert rows[rows["split"] == "test"]["error"].str.contains("FloatingPointError: simulator blew up").all()


def test_resume_after_sigkill_loses_nothing(tmp_path):
    """Kill a real ``vp-eval`` process mid-run, rerun the same command: every episode once, none lost."""
    protocol = write_protocol(tmp_path, "killme", splits=["test"], episodes=10, max_steps=20)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "eval.cli", "policy=random", f"protocol={protocol}", f"run_dir={run_dir}",
           "num_envs=1", "vector=sync", "progress=false", "videos_per_cell=0"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    parquet = run_dir / "episodes.parquet"
    deadline = time.time() + 120
    before = None
    while time.time() < deadline:
        if parquet.is_file():
            before = pd.read_parquet(parquet)
            if len(before) >= 2:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = pd.read_parquet(parquet)  # still a valid file: writes are atomic
    assert 2 <= len(before) < 10, "the run finished before it could be killed; make the protocol longer"

    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{len(before)} episodes already done" in out.stderr  # the resume says so (Hydra must not mute it)
    after = pd.read_parquet(parquet)
    assert sorted(after["episode"]) == list(range(10))  # each exactly once
    kept = after.merge(before[["episode", "finished_at"]], on="episode", suffixes=("", "_before"))
    assert (kept["finished_at"] == kept["finished_at_before"]).all()  # finished rows were not rerun
    assert len(kept) == len(before)
    fresh = run(protocol, "random", run_dir=tmp_path / "fresh", num_envs=2, vector="sync", progress=False,
                videos_per_cell=0)
    pd.testing.assert_frame_equal(without_timings(after), without_timings(fresh))

    # a run dir belongs to one (protocol, policy): anything else is refused before any rollout
    with pytest.raises(RunError, match="holds rows with policy="):
        run(protocol, "expert", run_dir=run_dir, progress=False)


def test_only_listed_episodes_run_in_order(tmp_path):
    p = load_protocol(write_protocol(tmp_path, tasks=["reach-v3", "door-close-v3"],
                                     splits=["test", "new_task"], episodes=1))
    assert [(e.task, e.split) for e in p.episodes()] == [("reach-v3", "test"), ("door-close-v3", "new_task")]
    assert np.all([e.index == 0 for e in p.episodes()])


def test_robosuite_protocol_runs_the_expert_and_random_policy(tmp_path):
    """The runner is not Meta-World-only: a robosuite protocol gets 7-D actions, a 9-D state, the robosuite
    expert (through the padded privileged state) and a random policy of the right size."""
    proto = write_protocol(tmp_path, suite="robosuite", tasks=["Lift", "PickPlaceCan"], splits=["test", "new_task"],
                           episodes=1, max_steps=60, cameras=["agentview"])
    expert = run(proto, "expert", run_dir=tmp_path / "expert", num_envs=2, vector="sync", videos_per_cell=0,
                 progress=False)
    assert set(zip(expert["task"], expert["split"])) == {("Lift", "test"), ("PickPlaceCan", "new_task")}
    assert (expert["error"] == "").all()
    lift = expert[expert["task"] == "Lift"].iloc[0]
    assert lift["success"] and lift["steps"] < 60  # the Lift expert needs about 40 steps
    rand = run(proto, "random", run_dir=tmp_path / "random", num_envs=1, vector="sync", videos_per_cell=0,
               progress=False)
    assert (rand["error"] == "").all() and (rand["steps"] == 60).all()
    with pytest.raises(Exception, match="state 'full' differs in size between robosuite tasks"):
        load_protocol(write_protocol(tmp_path, name="bad", suite="robosuite", tasks=["Lift"], splits=["test"],
                                     cameras=["agentview"], state="full"))


def test_rows_carry_the_render_version_and_a_run_dir_of_older_rows_is_refused(tmp_path):
    """Rows record vp_envs.RENDER_VERSION; resuming into a run dir whose rows were rendered by an older
    version (a file written before the column existed) is refused: the episodes would not be comparable."""
    import vp_envs

    protocol = write_protocol(tmp_path)
    rows = run(protocol, "expert", run_dir=tmp_path / "r", num_envs=1, vector="sync", progress=False,
               videos_per_cell=0)
    assert (rows["render_version"] == vp_envs.RENDER_VERSION).all()
    old = rows.drop(columns=["render_version"]).iloc[:2]
    (tmp_path / "old").mkdir()
    old.to_parquet(tmp_path / "old" / "episodes.parquet")
    with pytest.raises(RunError, match=r"render_version \[1\]"):
        run(protocol, "expert", run_dir=tmp_path / "old", num_envs=1, vector="sync", progress=False)


def test_rows_of_an_older_split_version_are_kept_aside_and_run_again(tmp_path):
    """Rows record their split's version; when a split's definition changed (Meta-World ``position`` version
    2), resuming moves the older rows to episodes_superseded.parquet and runs those episodes again, leaving
    the other splits' rows alone. The leaderboard labels rows nobody re-ran ``position (v1)``."""
    from eval.leaderboard import label_split_versions

    protocol = write_protocol(tmp_path, tasks=["coffee-button-v3"], splits=["test", "position"], episodes=2,
                              max_steps=20)
    run_dir = tmp_path / "r"
    rows = run(protocol, "expert", run_dir=run_dir, num_envs=1, vector="sync", progress=False, videos_per_cell=0)
    assert dict(zip(rows["split"], rows["split_version"])) == {"test": 1, "position": 2}
    old = rows.copy()
    old.loc[old["split"] == "position", "split_version"] = 1
    old.loc[old["split"] == "position", "steps"] = 999  # what the old definition measured
    old.to_parquet(run_dir / "episodes.parquet")
    assert set(label_split_versions(old)["split"]) == {"test", "position (v1)"}
    again = run(protocol, "expert", run_dir=run_dir, num_envs=1, vector="sync", progress=False, videos_per_cell=0)
    pd.testing.assert_frame_equal(without_timings(again), without_timings(rows))
    kept = pd.read_parquet(run_dir / "episodes_superseded.parquet")
    assert len(kept) == 2 and (kept["split_version"] == 1).all() and (kept["steps"] == 999).all()


def test_runner_binds_the_protocol_before_any_rollout(tmp_path):
    """``bind_protocol`` is part of the Policy interface (default: nothing): the runner hands every policy
    the protocol it is about to run, so a policy whose identity depends on it (the expert) can set its hash."""
    from eval.runner import Runner

    class Binds(RandomPolicy):
        def bind_protocol(self, protocol):
            self.bound = protocol.name
            self.checkpoint_hash = "b" * 64

    protocol = load_protocol(write_protocol(tmp_path))
    policy = Binds()
    Runner(protocol, policy, tmp_path / "r", num_envs=1, vector="sync", progress=False)
    assert policy.bound == protocol.name and policy.checkpoint_hash == "b" * 64
    assert Policy().bind_protocol(protocol) is None  # the default binds nothing
