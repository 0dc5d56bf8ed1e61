"""Policy specs: every bad spec fails with a clear error before any rollout; SB3 models are evaluated."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from eval_helpers import write_protocol

import vp_envs
from eval.policies import PolicySpecError, RandomPolicy, load_policy_spec
from eval.runner import RunError, run


@pytest.mark.parametrize("spec, words", [
    ("experts", ["unknown policy spec 'experts'", "expert", "random", "sb3:<model.zip>"]),
    ("runs/no/such/ckpt", ["checkpoint dir", "does not exist"]),
    ("sb3:/no/such/model.zip", ["SB3 model file", "does not exist"]),
    ("py:no_such_module_xyz:make", ["cannot import module"]),
])
def test_bad_specs_fail_with_the_valid_kinds(spec, words):
    with pytest.raises(PolicySpecError) as err:
        load_policy_spec(spec)
    for word in words:
        assert word in str(err.value)


def test_checkpoint_dir_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(PolicySpecError, match="is not a policy checkpoint: config.json is missing"):
        load_policy_spec(str(tmp_path))


def test_ray_backend_without_ray_says_pip_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(RunError, match=r"pip install -e \"\.\[ray\]\""):
        run(write_protocol(tmp_path), "random", run_dir=tmp_path / "run", backend="ray")
    assert not (tmp_path / "run").exists()


def test_cli_errors_before_any_rollout(tmp_path):
    """The real command line: a bad protocol or spec exits 2 with one clear line and writes nothing."""
    good = write_protocol(tmp_path)
    bad = write_protocol(tmp_path, "bad", episodes=-1)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for args, words in [((f"protocol={good}", "policy=runs/missing_ckpt"), "does not exist"),
                        ((f"protocol={bad}", "policy=random"), "'episodes'")]:
        run_dir = tmp_path / "never"
        out = subprocess.run([sys.executable, "-m", "eval.cli", *args, f"run_dir={run_dir}"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "vp-eval: error:" in out.stderr and words in out.stderr
        assert not run_dir.exists()


def test_random_policy_depends_on_the_episode_not_the_slot():
    policy = RandomPolicy()
    obs = {"state": np.zeros((2, 4), np.float32)}
    a = policy.act(obs, [{"slot": 0, "seed": 11}, {"slot": 1, "seed": 22}])
    policy.reset()
    b = policy.act(obs, [{"slot": 0, "seed": 22}, {"slot": 1, "seed": 11}])
    assert np.array_equal(a, b[::-1]) and np.all(np.abs(a) <= 1)


class StateOnly(gym.ObservationWrapper):
    """What an SB3 user trains on: the ``state`` vector alone."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = env.observation_space["state"]

    def observation(self, obs):
        return obs["state"]


def test_sb3_model_trained_on_state_is_evaluated(tmp_path):
    from stable_baselines3 import PPO

    env = StateOnly(vp_envs.make("vp/metaworld-reach-v3", cameras=(), max_episode_steps=64))
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    zip_path = tmp_path / "ppo_reach.zip"
    model.save(zip_path)
    env.close()

    protocol = write_protocol(tmp_path, "state_only", cameras=[], splits=["test"], max_steps=20)
    spec = f"sb3:{zip_path}"
    rows = run(protocol, spec, run_dir=tmp_path / "run", num_envs=2, vector="sync", progress=False)
    assert len(rows) == 2 and (rows["error"] == "").all() and (rows["steps"] == 20).all()
    assert (rows["checkpoint_hash"] == hashlib.sha256(zip_path.read_bytes()).hexdigest()).all()
    # the bridge gives the same actions as the model itself on the same state
    policy = load_policy_spec(spec)
    state = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    expected, _ = model.predict(state, deterministic=True)
    assert np.allclose(policy.act({"state": state}, [{}] * 3), np.clip(expected, -1, 1))


def test_training_record_of_a_saved_checkpoint(tmp_path):
    """vp-eval's manifest records how a checkpoint was trained: method, demos per task (the budget when set,
    else what the datasets held), seed and a recipe hash that ignores the seed, budget and bookkeeping."""
    import json

    from eval.policies import training_record

    def ckpt(name, **train):
        d = tmp_path / name
        d.mkdir()
        base = {"policy": {"name": "bc", "config": {"crop": 58}}, "steps": 2000, "batch_size": 64, "seed": 0,
                "episodes_per_task": None, "out_dir": f"runs/{name}", "data": ["data/x"]}
        (d / "config.json").write_text(json.dumps({
            "policy": "bc", "trained_steps": 2000, "train_config": {**base, **train},
            "datasets": {"data/x": {"settings": {"drop_actions": False},
                                    "tasks": {"a": {"episodes_kept": 25}, "b": {"episodes_kept": 20}}}}}))
        return d

    full = training_record(ckpt("full"))
    five = training_record(ckpt("five", episodes_per_task=5, seed=2, out_dir="elsewhere"))
    other = training_record(ckpt("other", steps=500))
    assert (full["method"], full["episodes_per_task"], full["seed"]) == ("bc", 20, 0)
    assert (five["episodes_per_task"], five["seed"]) == (5, 2)
    assert five["recipe_hash"] == full["recipe_hash"] != other["recipe_hash"]
    assert training_record(tmp_path / "missing") is None
    # settings added later keep the hash of recipes trained before they existed, at their defaults only
    vp = {"name": "video_policy", "config": {"guidance": 1.0}}
    before = training_record(ckpt("vp_before", policy=vp))
    after = training_record(ckpt("vp_after", policy={**vp, "config": {
        "guidance": 1.0, "parameterization": "edm", "svd_time_ids": [6.0, 127.0, 0.02]}}))
    svd = training_record(ckpt("vp_svd", policy={**vp, "config": {"guidance": 1.0, "parameterization": "svd"}}))
    assert before["recipe_hash"] == after["recipe_hash"] != svd["recipe_hash"]


def test_expert_keeps_one_staged_expert_per_slot():
    """robosuite's experts remember their stage: two slots on the same task get two experts, and a slot that
    starts a new episode gets a fresh one (sharing one made the Stack expert fail in vp-eval)."""
    from eval.policies import ExpertPolicy

    policy = ExpertPolicy()
    a, b = policy._expert(0, "robosuite", "Stack"), policy._expert(1, "robosuite", "Stack")
    assert a is not b and policy._expert(0, "robosuite", "Stack") is a
    policy.reset([0])
    assert policy._expert(0, "robosuite", "Stack") is not a and policy._expert(1, "robosuite", "Stack") is b


def test_a_py_factory_gives_each_slot_and_episode_its_own_callable(tmp_path, monkeypatch):
    """A stateful callable (here: it remembers the first episode it saw) must not be shared across slots
    or carried into the next episode."""
    from eval.runner import run

    (tmp_path / "stateful_policy_mod.py").write_text(
        "import numpy as np\n"
        "SEEN = []\n"
        "def make():\n"
        "    mine = []\n"
        "    SEEN.append(mine)\n"
        "    def act(obs, info):\n"
        "        mine.append((info['slot'], info['episode']))\n"
        "        return np.zeros(4, np.float32)\n"
        "    return act\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("stateful_policy_mod")
    rows = run(write_protocol(tmp_path, splits=["test"], episodes=4, max_steps=3), "py:stateful_policy_mod:make",
               run_dir=tmp_path / "r", num_envs=2, vector="sync", progress=False, videos_per_cell=0)
    assert len(rows) == 4
    used = [calls for calls in mod.SEEN if calls]
    assert len(used) == 4  # one callable per (slot, episode)
    assert all(len(set(calls)) == 1 and len(calls) == 3 for calls in used)


def test_image_ablation_shows_a_constant_image_and_gets_its_own_rows(tmp_path):
    from eval.policies import ImageAblation, PolicySpecError, RandomPolicy
    from eval.runner import run

    class Looking(RandomPolicy):
        seen: list = []

        def act(self, obs, infos):
            self.seen.append(np.unique(obs["pixels"]["corner2"]))
            return super().act(obs, infos)

    inner = Looking("random")
    rows = run(write_protocol(tmp_path, splits=["test"], episodes=2, max_steps=3), inner, run_dir=tmp_path / "r",
               vector="sync", progress=False, videos_per_cell=0, image_ablation="constant")
    assert set(rows["policy"]) == {"random#constant-image"}
    assert all(len(u) == 1 and u[0] == 128 for u in inner.seen)
    with pytest.raises(PolicySpecError, match="unknown image_ablation 'noise'; known: constant"):
        ImageAblation(inner, "noise")
    with pytest.raises(RunError, match="image_ablation is not supported with backend=ray"):
        run(write_protocol(tmp_path, "r2", splits=["test"], episodes=1, max_steps=3), "random",
            run_dir=tmp_path / "never", backend="ray", progress=False, image_ablation="constant")
    assert not (tmp_path / "never").exists()


def test_expert_hash_names_the_expert_versions_of_the_protocol():
    """A protocol whose experts are all first versions keeps the hash of the spec (every committed expert row
    stays resumable); one with robosuite's Stack hashes version 2 in, so rows of the two Stack experts never
    share a run dir."""
    from eval.policies import ExpertPolicy, sha256_text
    from eval.protocol import load_protocol

    mw, rs = ExpertPolicy(), ExpertPolicy()
    mw.bind_protocol(load_protocol("metaworld-lite-v2"))
    rs.bind_protocol(load_protocol("robosuite-lite-v2"))
    assert mw.checkpoint_hash == sha256_text("expert") and mw.expert_versions == {}
    assert rs.expert_versions == {"Stack": 2} and rs.checkpoint_hash == sha256_text("expert|Stack=v2")


def test_training_record_names_the_expert_versions_behind_the_demos(tmp_path):
    """vp-data records an expert past version 1 per task; the checkpoint's training record carries it (for the
    leaderboard's label and seed pooling), and a record of first-version demos has no such key."""
    import json

    from eval.policies import training_record

    def ckpt(name, tasks):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({
            "policy": "bc_state", "train_config": {"policy": {"name": "bc_state"}, "seed": 0, "data": ["data/x"]},
            "datasets": {"data/x": {"settings": {"drop_actions": False}, "tasks": tasks}}}))
        return d

    new = training_record(ckpt("new", {"Lift": {"episodes_kept": 25},
                                       "Stack": {"episodes_kept": 25, "expert_version": 2}}))
    old = training_record(ckpt("old", {"Lift": {"episodes_kept": 25}, "Stack": {"episodes_kept": 25}}))
    assert new["demo_experts"] == {"Stack": 2} and "demo_experts" not in old
    assert new["recipe_hash"] == old["recipe_hash"]  # the recipe is the same; the leaderboard keys the demos apart
