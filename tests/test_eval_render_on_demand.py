"""The runner renders only the frames someone reads (the policy, a filmed episode, a video score), and the
rows are the same as rendering every step: skipped frames are never the ones a policy acts on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vp_envs
from eval.runner import Runner, run
from eval.protocol import load_protocol
from eval_helpers import ReplanEvery, without_timings, write_protocol
from vp_agent import make_policy
from vp_envs.datagen import generate


@pytest.fixture
def count_renders(monkeypatch):
    """Count the renderer's calls (one per observation rendered, whatever the camera count)."""
    from vp_envs import rendering

    calls = {"n": 0}
    original = rendering.SceneRenderer.render

    def counted(self, data):
        calls["n"] += 1
        return original(self, data)

    monkeypatch.setattr(rendering.SceneRenderer, "render", counted)
    return calls


def test_a_step_told_not_to_render_repeats_the_frames_and_the_next_one_renders_the_world(make_env):
    env = make_env("vp/metaworld-reach-v3", cameras=("corner2",), width=32, height=32)
    obs, _ = env.reset(seed=0)
    first = obs["pixels"]["corner2"].copy()
    action = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    for _ in range(5):
        env.unwrapped.render_next = False
        obs, *_ = env.step(action)
        assert np.array_equal(obs["pixels"]["corner2"], first)  # not rendered: the previous frames
    assert env.unwrapped.render_next  # one-shot: back on after the step
    obs, *_ = env.step(action)
    moved = obs["pixels"]["corner2"]
    assert not np.array_equal(moved, first)  # the arm moved: the next rendered frame shows it
    fresh = make_env("vp/metaworld-reach-v3", cameras=("corner2",), width=32, height=32)
    fresh.reset(seed=0)
    for _ in range(6):
        out, *_ = fresh.step(action)
    assert np.array_equal(out["pixels"]["corner2"], moved)  # the same world as rendering every step


def test_rows_and_the_frames_a_policy_reads_are_the_same_with_and_without_skipping(tmp_path, count_renders):
    protocol = load_protocol(str(write_protocol(tmp_path, splits=["test"], episodes=3, max_steps=20)))

    def once(name, on_demand):
        policy = ReplanEvery(3)
        count_renders["n"] = 0
        rows = Runner(protocol, policy, tmp_path / name, num_envs=2, vector="sync", videos_per_cell=0,
                      progress=False, render_on_demand=on_demand).run()
        return rows, sorted(policy.read), count_renders["n"]

    a, read_a, renders_a = once("every", False)
    b, read_b, renders_b = once("demand", True)
    assert (a["error"] == "").all() and len(a) == 3 and (a["steps"] == 20).all()
    assert without_timings(a).equals(without_timings(b))
    assert read_a == read_b and len(read_a) == 3 * 7  # frames read at calls 0, 3, ..., 18 of each episode
    assert renders_a == 3 * (1 + 20)  # a reset and 20 steps per episode
    assert renders_b == 3 * (1 + 6)  # the reset, then only the 6 frames read after it


def test_the_expert_never_renders_between_resets_and_filmed_episodes_render_every_step(tmp_path, count_renders):
    protocol = write_protocol(tmp_path, splits=["test"], episodes=2, max_steps=12)
    a = run(protocol, "expert", run_dir=tmp_path / "a", num_envs=2, vector="sync", videos_per_cell=0,
            progress=False)
    assert count_renders["n"] == 2  # the resets only: the expert acts from the simulator's state
    count_renders["n"] = 0
    b = run(protocol, "expert", run_dir=tmp_path / "b", num_envs=2, vector="sync", videos_per_cell=1,
            progress=False)
    filmed_steps = int(b.loc[b["episode"] == 0, "steps"].iloc[0])
    assert count_renders["n"] == 1 + filmed_steps + 1  # episode 0 is filmed: every frame; episode 1: its reset
    assert without_timings(a).equals(without_timings(b))
    assert len(list((tmp_path / "b" / "videos").rglob("*.mp4"))) == 1


def test_video_policy_rows_and_video_scores_are_the_same_with_and_without_skipping(tmp_path, count_renders):
    from test_video_policy import TINY as VP_TINY
    from vp_agent.data import VideoDataset

    generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "demos", size=32, progress=False)
    # 4 generated frames, one every 2 steps, a new chunk every 4 steps: half the scored frames fall between
    # the policy's own reads
    ds = VideoDataset([tmp_path / "demos"], horizon=8, frame_stride=2)
    torch.manual_seed(0)
    make_policy("video_policy", {**VP_TINY, "frame_stride": 2, "n_action_steps": 4}, ds.stats, ds.state_dim,
                ds.action_dim).save(tmp_path / "ckpt")
    protocol = load_protocol(str(write_protocol(tmp_path, splits=["test"], episodes=2, max_steps=24)))
    from eval.policies import load_policy_spec

    def once(name, on_demand):
        count_renders["n"] = 0
        rows = Runner(protocol, load_policy_spec(str(tmp_path / "ckpt")), tmp_path / name, num_envs=2,
                      vector="sync", videos_per_cell=0, progress=False, render_on_demand=on_demand).run()
        return rows, count_renders["n"]

    a, renders_a = once("every", False)
    b, renders_b = once("demand", True)
    assert (a["error"] == "").all() and a["video_psnr"].notna().all()
    assert without_timings(a).equals(without_timings(b))  # actions, successes and video scores alike
    assert renders_b < renders_a
