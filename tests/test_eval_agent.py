"""A vp_agent checkpoint through vp-eval: batched calls over env slots, deterministic rows."""

import numpy as np
import pandas as pd
import torch

from eval.policies import load_policy_spec
from eval.runner import run
from eval_helpers import without_timings, write_protocol
from vp_agent import make_policy
from vp_agent.data import DemoDataset
from vp_envs.datagen import generate


def test_checkpoint_dir_runs_through_the_protocol_twice_identically(tmp_path):
    generate("metaworld", ["reach-v3"], "train", 2, tmp_path / "demos", size=32, progress=False)
    ds = DemoDataset([tmp_path / "demos"], n_obs=2, horizon=8)
    torch.manual_seed(0)
    policy = make_policy("diffusion", dict(text_encoder="hashing", encoder_channels=[8, 16], feature_dim=32,
                                           down_dims=[16, 32], horizon=8, n_action_steps=4, crop=28,
                                           num_inference_steps=2), ds.stats, ds.state_dim, ds.action_dim)
    policy.save(tmp_path / "ckpt")
    protocol = write_protocol(tmp_path, episodes=3)
    spec = str(tmp_path / "ckpt")
    assert load_policy_spec(spec).checkpoint_hash  # the weights' hash goes on every row

    def once(run_dir):
        torch.manual_seed(0)  # the sampler's noise: a fixed seed makes the policy deterministic
        return run(protocol, spec, run_dir=run_dir, num_envs=2, vector="sync", videos_per_cell=0,
                   progress=False)

    a, b = once(tmp_path / "run_a"), once(tmp_path / "run_b")
    assert len(a) == 6 and (a["error"] == "").all()
    assert without_timings(a).equals(without_timings(b))
    assert np.all(a["steps"] > 0)
    assert a["video_psnr"].isna().all()  # no generated video, no score


def test_video_policy_saves_generated_beside_executed_video_on_a_split_subset(tmp_path):
    """vp-eval on a Video Policy checkpoint, one split of the protocol: rows for that split only, and an mp4 of
    the executed rollout next to one of executed | generated frames."""
    import imageio.v3 as iio
    import pytest

    from eval.runner import RunError
    from test_video_policy import TINY as VP_TINY
    from vp_agent.data import VideoDataset

    generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "demos", size=32, progress=False)
    ds = VideoDataset([tmp_path / "demos"], horizon=8, frame_stride=4)
    torch.manual_seed(0)
    policy = make_policy("video_policy", VP_TINY, ds.stats, ds.state_dim, ds.action_dim)
    policy.save(tmp_path / "ckpt")
    protocol = write_protocol(tmp_path, episodes=1)
    rows = run(protocol, str(tmp_path / "ckpt"), run_dir=tmp_path / "run", num_envs=1, vector="sync",
               videos_per_cell=1, progress=False, splits=["camera"])
    assert set(rows["split"]) == {"camera"} and len(rows) == 1 and (rows["error"] == "").all()
    assert 0 < rows["video_psnr"].iloc[0] < 99  # generated frames scored against the executed ones
    videos = sorted(p.name for p in (tmp_path / "run" / "videos").rglob("*.mp4"))
    assert videos == ["ep000.mp4", "ep000_vs_generated.mp4"]
    side = iio.imread(next((tmp_path / "run" / "videos").rglob("*_vs_generated.mp4")))
    assert side.shape[1:3] == (32, 64)  # executed | generated
    with pytest.raises(RunError, match="not in protocol tiny; valid: test, camera"):
        run(protocol, str(tmp_path / "ckpt"), run_dir=tmp_path / "run2", splits=["nope"], progress=False)


def test_a_checkpoint_loaded_for_evaluation_acts_in_eval_mode(tmp_path):
    """vp-eval once stored how a checkpoint was trained in ``policy.training``, torch's train/eval flag: every
    loaded policy then ran in training mode (random crops, conditioning dropout) and one observation gave
    different actions on each call. The record is ``training_record``; the policy stays in eval mode."""
    import vp_envs

    generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "demos", size=32, progress=False)
    ds = DemoDataset([tmp_path / "demos"])
    policy = make_policy("bc", dict(text_encoder="hashing", encoder_channels=[8, 16], feature_dim=32,
                                    hidden_dims=[32], crop=28), ds.stats, ds.state_dim, ds.action_dim)
    policy.save(tmp_path / "ckpt", extra={"train_config": {"seed": 4, "steps": 1}, "datasets": {}})
    loaded = load_policy_spec(str(tmp_path / "ckpt"))
    assert loaded.training_record["seed"] == 4
    assert not any(m.training for m in loaded.modules())
    env = vp_envs.make("vp/metaworld-reach-v3", width=32, height=32)
    obs, info = env.reset(options={"episode": 0})
    actions = []
    for seed in range(3):
        torch.manual_seed(seed)  # a random crop would draw a different window each time
        loaded.reset()
        actions.append(loaded.act(obs, info))
    env.close()
    assert np.array_equal(actions[0], actions[1]) and np.array_equal(actions[0], actions[2])


def test_a_checkpoint_runs_under_other_inference_settings_as_its_own_row(tmp_path):
    """vp-eval inference={feature_steps: 1}: the same weights with one video pass per chunk instead of one per
    sampling step. The U-Net runs that many times, the rows carry their own spec and label, and settings that
    shape the weights, unknown names, bad values and policies without a config are refused before any rollout."""
    import pytest

    from eval.leaderboard import run_method, training_runs
    from eval.policies import PolicySpecError, with_inference
    from eval.runner import RunError
    from test_video_policy import TINY as VP_TINY
    from vp_agent.data import VideoDataset

    generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "demos", size=32, progress=False)
    ds = VideoDataset([tmp_path / "demos"], horizon=8, frame_stride=4)
    torch.manual_seed(0)
    policy = make_policy("video_policy", VP_TINY, ds.stats, ds.state_dim, ds.action_dim)
    policy.save(tmp_path / "ckpt", extra={"train_config": {"seed": 0, "steps": 1, "episodes_per_task": 1},
                                          "datasets": {}})
    spec = str(tmp_path / "ckpt")
    protocol = write_protocol(tmp_path, episodes=1, max_steps=8)

    def unet_calls(settings):
        loaded = with_inference(load_policy_spec(spec), settings)
        calls = []
        loaded.unet.register_forward_hook(lambda *a: calls.append(1))
        rows = run(protocol, loaded, run_dir=tmp_path / f"run-{len(settings)}", num_envs=1, vector="sync",
                   videos_per_cell=0, progress=False, splits=["test"])
        assert (rows["error"] == "").all()
        return loaded, rows, len(calls)

    base, base_rows, base_calls = unet_calls({})
    fast, fast_rows, fast_calls = unet_calls({"feature_steps": 1})
    assert base.config.feature_steps is None and fast.config.feature_steps == 1
    assert base_calls == 3 * fast_calls > 0  # 3 sampling steps: three video passes per chunk, then one
    assert set(fast_rows["policy"]) == {spec + "#feature_steps=1"}
    assert set(fast_rows["checkpoint_hash"]) == set(base_rows["checkpoint_hash"])  # the same weights
    assert run_method(tmp_path / "run-1", spec) == "video_policy (feature_steps=1)"
    assert run_method(tmp_path / "run-0", spec) == "video_policy"
    both = pd.concat([base_rows.assign(source=str(tmp_path / "run-0" / "episodes.parquet")),
                      fast_rows.assign(source=str(tmp_path / "run-1" / "episodes.parquet"))])
    assert list(training_runs(both)["policy"]) == [spec]  # never pooled with the run as another seed

    with pytest.raises(PolicySpecError, match=r"\['unet_channels'\] cannot change for video_policy; valid: "
                                              r"num_inference_steps, feature_steps"):
        with_inference(load_policy_spec(spec), {"unet_channels": [8, 8]})
    with pytest.raises(PolicySpecError, match="feature_steps must be None or in 1..num_inference_steps=3"):
        with_inference(load_policy_spec(spec), {"feature_steps": 9})
    with pytest.raises(PolicySpecError, match="need a vp_agent checkpoint; policy 'random' has no config"):
        with_inference(load_policy_spec("random"), {"feature_steps": 1})
    with pytest.raises(RunError, match="inference settings are not supported with backend=ray"):
        run(protocol, spec, run_dir=tmp_path / "never", backend="ray", progress=False,
            inference={"feature_steps": 1})
    assert not (tmp_path / "never").exists()
