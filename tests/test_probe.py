"""python -m eval.probe: does a policy's image encoder know where the objects are?"""

import numpy as np
import pandas as pd
import pytest
import torch

from eval.probe import encoder_features, first_frames, first_observations, main, random_init, score, \
    video_policy_features
from vp_envs.observability import RANDOMISED_CM, span

TASK = "button-press-topdown-v3"  # one of metaworld-lite-v2's tasks; the button's position is randomised


def test_the_score_finds_a_position_that_is_in_the_features_and_not_one_that_is_not():
    rng = np.random.default_rng(1)
    xy = rng.uniform(-0.1, 0.1, (60, 2))
    mixed = np.concatenate([xy @ rng.normal(size=(2, 8)), rng.normal(size=(60, 24))], 1)  # position, mixed in
    found = score(mixed + rng.normal(scale=0.002, size=mixed.shape), xy)
    blind = score(rng.normal(size=(60, 32)), xy)
    assert found["r2"] > 0.95 and found["err_cm"] < 1.0
    assert blind["r2"] < 0.2 and blind["err_cm"] > 0.8 * blind["spread_cm"]
    assert found["spread_cm"] == blind["spread_cm"] > 5  # the same positions: the same cost of knowing nothing


def test_random_init_redraws_every_weight():
    from vp_agent.policies.modules import ImageEncoder

    enc = ImageEncoder((8, 16), out_dim=16)
    fresh = random_init(enc)
    pairs = list(zip(enc.state_dict().values(), fresh.state_dict().values()))
    assert all(a.shape == b.shape for a, b in pairs)
    assert sum(not torch.equal(a, b) for a, b in pairs if a.numel() > 16) >= 5  # the convolutions and linears
    assert torch.equal(random_init(enc).state_dict()["head.1.weight"], fresh.state_dict()["head.1.weight"])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained policies (the probe's plumbing, not its verdict): BCs where ``bc`` reads the protocol's camera
    (corner4), ``corner2`` a camera metaworld-lite-v2 does not render, ``state`` no image at all; ``vp`` a tiny
    Video Policy."""
    from vp_agent import make_policy
    from vp_agent.data import DemoDataset
    from vp_envs.datagen import generate

    root = tmp_path_factory.mktemp("probe")
    generate("metaworld", [TASK], "train", 1, root / "demos", cameras=("corner4",), size=32, progress=False)
    ds = DemoDataset([root / "demos"], camera="corner4")
    base = dict(text_encoder="hashing", encoder_channels=[8, 16], feature_dim=16, hidden_dims=[32], crop=0)
    for name, extra in {"bc": dict(camera="corner4"), "corner2": dict(camera="corner2"),
                        "state": dict(use_image=False)}.items():
        torch.manual_seed(0)
        make_policy("bc", {**base, **extra}, ds.stats, ds.state_dim, ds.action_dim).save(root / name)
    from test_video_policy import TINY as VP_TINY

    torch.manual_seed(0)
    vp = make_policy("video_policy", {**VP_TINY, "camera": "corner4"}, ds.stats, ds.state_dim, ds.action_dim)
    vp.save(root / "vp")
    vp.save(root / "vp-vae", extra={"stage": "vae"})  # as vp-train saves checkpoints/vae: it cannot act
    return root


@pytest.fixture(scope="module")
def bc_checkpoint(checkpoints):
    return checkpoints / "bc"


def test_the_cli_probes_every_randomised_object_for_both_encoders(bc_checkpoint, tmp_path, capsys):
    out = tmp_path / "probe.csv"
    assert main([str(bc_checkpoint), "--protocol", "metaworld-lite-v2", "--task", TASK, "--episodes", "10",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert [p.name for p in tmp_path.iterdir()] == ["probe.csv"]  # written atomically: no temporary file left
    assert set(df.encoder) == {"trained", "random-init", "none"} and set(df.task) == {TASK}
    assert set(df[df.encoder == "none"].features) == {"pixels-16x16"}  # the frame's own row, once per object
    frames, positions = first_frames("metaworld-lite-v2", TASK, "test", 10, "corner4")
    moving = {n for n, p in positions.items() if 100 * span(p[:, :2]) >= RANDOMISED_CM}
    assert moving and set(df.object) == moving  # exactly the objects the episodes move
    assert len(df) == 3 * len(moving)
    assert frames.shape == (10, 96, 96, 3) and len({f.tobytes() for f in frames}) == 10  # the layouts show
    for name in moving:
        spread = np.linalg.norm(positions[name][:, :2] - positions[name][:, :2].mean(0), axis=1).mean() * 100
        assert np.allclose(df[df.object == name].spread_cm, spread, rtol=1e-3)
    assert df.r2.notna().all() and (df.err_cm > 0).all()
    assert "random-init" in capsys.readouterr().out


def test_the_frames_own_row_finds_what_the_frame_shows():
    from eval.probe import pixel_features

    frames, positions = first_frames("metaworld-lite-v2", TASK, "test", 30, "corner4")
    xy = positions["object"][:, :2]  # the button box, placed anew each episode
    feats = pixel_features(frames)
    assert feats.shape == (30, 16 * 16 * 3)
    assert score(feats, xy)["r2"] > 0.9  # the button is drawn, and moves (the observability check's verdict)
    assert score(pixel_features(frames[np.random.default_rng(0).permutation(30)]), xy)["r2"] < 0.3  # not chance


def test_features_are_the_encoders_own_at_inference(bc_checkpoint):
    from vp_agent import load_policy

    policy = load_policy(bc_checkpoint)
    frames, _ = first_frames("metaworld-lite-v2", TASK, "test", 2, "corner4")
    feats = encoder_features(policy, frames)
    with torch.no_grad():
        ref = policy.encoder(torch.from_numpy(frames).movedim(-1, -3).float() / 255.0)
    assert np.allclose(feats, ref.double().numpy())


def test_bad_input_is_one_line_and_exit_2(checkpoints, tmp_path, capsys):
    cli = ["--protocol", "metaworld-lite-v2", "--task"]
    assert main([str(tmp_path / "nope"), *cli, TASK]) == 2
    assert main([str(checkpoints / "bc"), *cli, TASK, "--episodes", "4"]) == 2
    assert main([str(checkpoints / "bc"), *cli, "Lift", "--episodes", "10"]) == 2
    assert main([str(checkpoints / "state"), *cli, TASK, "--episodes", "10"]) == 2
    assert main([str(checkpoints / "corner2"), *cli, TASK, "--episodes", "10"]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 5 and all(e.startswith("eval.probe: error:") for e in errs)
    assert "nope" in errs[0] and "too few" in errs[1] and TASK in errs[2]  # the valid cells are listed
    assert "no image encoder" in errs[3] and "renders ['corner4'], not 'corner2'" in errs[4]


def test_video_policy_is_probed_on_its_latent_and_on_what_its_action_head_reads(checkpoints, tmp_path, capsys):
    out, grid = tmp_path / "probe.csv", tmp_path / "recon.png"
    assert main([str(checkpoints / "vp"), str(checkpoints / "bc"), "--protocol", "metaworld-lite-v2", "--task", TASK,
                 "--episodes", "10", "--out", str(out), "--grid", str(grid)]) == 0
    df = pd.read_csv(out)
    assert set(df.encoder) == {"trained", "random-init", "none"}
    assert set(df.features) == {"latent", "head-first-step", "head-last-step", "encoder", "pixels-16x16"}
    vp = df[df.checkpoint == str(checkpoints / "vp")]
    assert len(vp) == 2 * 3 * df.object.nunique() and df.r2.notna().all()
    import imageio.v3 as iio

    size = 32 * 3  # the tiny config's autoencoder size, 3x: 8 frames over the one Video Policy's reconstructions
    assert iio.imread(grid).shape == (2 * size, 8 * size, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.csv", "recon.png"]
    assert main([str(checkpoints / "bc"), "--protocol", "metaworld-lite-v2", "--task", TASK, "--episodes", "10",
                 "--grid", str(grid)]) == 2
    assert "at least one Video Policy" in capsys.readouterr().err


def test_video_policy_features_are_the_latent_and_the_action_heads_input(checkpoints):
    from vp_agent import load_policy

    policy = load_policy(checkpoints / "vp")
    obs = first_observations("metaworld-lite-v2", TASK, "test", 3, "corner4")
    seen = []  # what the action head's denoiser is given, step by step
    denoise = policy._action_denoise
    policy._action_denoise = lambda a, sigma, features, *rest: seen.append(features.clone()) or denoise(
        a, sigma, features, *rest)
    feats = video_policy_features(policy, obs["frames"], obs["states"], obs["instruction"])
    n = policy.config.num_inference_steps
    assert len(seen) == n and feats["head-last-step"].shape == (3, policy.config.feature_dim)
    assert np.allclose(feats["head-first-step"], seen[0].double().numpy())
    assert np.allclose(feats["head-last-step"], seen[-1].double().numpy())
    with torch.no_grad():
        latent = policy.encode_frames(torch.from_numpy(obs["frames"]).movedim(-1, -3)).flatten(1)
    assert np.allclose(feats["latent"], latent.double().numpy())
    again = video_policy_features(policy, obs["frames"], obs["states"], obs["instruction"])
    assert all(np.array_equal(feats[k], again[k]) for k in feats)  # the sampling noise is seeded per frame
    assert not np.allclose(feats["head-first-step"][0], feats["head-first-step"][1])  # and differs by frame


def test_an_autoencoder_checkpoint_is_probed_on_its_latent_alone(checkpoints, tmp_path):
    from eval.policies import PolicySpecError, load_policy_spec

    with pytest.raises(PolicySpecError, match="cannot act"):  # evaluation refuses it ...
        load_policy_spec(str(checkpoints / "vp-vae"))
    out = tmp_path / "probe.csv"  # ... the probe reads its latent
    assert main([str(checkpoints / "vp-vae"), "--protocol", "metaworld-lite-v2", "--task", TASK, "--episodes", "10",
                 "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df[df.checkpoint == str(checkpoints / "vp-vae")].features) == {"latent"}


def test_a_corrupt_autoencoder_checkpoint_is_one_line_and_exit_2(checkpoints, tmp_path, capsys):
    import shutil

    bad = tmp_path / "vp-vae"
    shutil.copytree(checkpoints / "vp-vae", bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    assert main([str(bad), "--protocol", "metaworld-lite-v2", "--task", TASK, "--episodes", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eval.probe: error:") and str(bad) in err[0]
