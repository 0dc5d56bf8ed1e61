"""Video Policy: shapes, the stop-gradient, action-free video, save/load, staged training, pretrained loading."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import vp_envs
from vp_agent import load_policy, make_policy
from vp_agent.data import VideoDataset
from vp_agent.policies.video_policy.configuration_video_policy import VideoPolicyConfig, video_policy_gpu
from vp_agent.train import TrainConfig, _batch, train
from vp_envs.datagen import generate

TINY = dict(text_encoder="hashing", image_size=32, vae_channels=[8, 16, 16], unet_channels=[32, 32],
            unet_heads=[1, 1], horizon=8, frame_stride=4, n_action_steps=4, action_down_dims=[16, 32],
            pool_channels=16, feature_dim=32, step_embed_dim=32, num_inference_steps=3,
            stage_steps={"vae": 2, "video": 2, "action": 2}, stage_batch={"vae": 4, "video": 4, "action": 4})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    demos = tmp_path_factory.mktemp("vp_demos")
    generate("metaworld", ["reach-v3"], "train", 2, demos, size=32, progress=False)
    video = tmp_path_factory.mktemp("vp_video")
    generate("metaworld", ["door-close-v3"], "train", 1, video, size=32, drop_actions=True, progress=False)
    return demos, video


def _policy(data, **over):
    ds = VideoDataset(list(data), cameras=("corner2",), horizon=8, frame_stride=4)
    torch.manual_seed(0)
    policy = make_policy("video_policy", {**TINY, **over}, ds.stats, ds.state_dim, ds.action_dim)
    ds.set_text_embeddings(policy.text_encoder.encode(ds.instructions))
    policy.prepare_dataset(ds)
    return policy, ds


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_dataset_keeps_action_free_video_out_of_action_stages(data):
    ds = VideoDataset(list(data), horizon=8, frame_stride=4)
    free = {e for e, a in enumerate(ds.actions) if a is None}
    assert free, "the fixture has an action-free episode"
    assert not {ds.index[i][0] for i in ds.indices("action")} & free
    assert {ds.index[i][0] for i in ds.indices("video")} & free
    item = ds[0]
    assert item["image"].shape == (1, 3, 32, 32) and item["action"].shape == (8, 4)


def test_latent_cache_is_keyed_by_the_image_size_frames_are_resized_to(data, tmp_path):
    """Same autoencoder weights, same data, another config.image_size: other latents, so another cache file."""
    ds = VideoDataset(list(data), cameras=("corner2",), horizon=8, frame_stride=4)
    files = []
    for size in (32, 16):
        torch.manual_seed(0)
        policy = make_policy("video_policy", {**TINY, "image_size": size}, ds.stats, ds.state_dim, ds.action_dim)
        policy.prepare_dataset(ds, cache_dir=tmp_path / str(size))
        files.append(next((tmp_path / str(size)).glob("latents-*.pt")).name)
    assert files[0] != files[1]


def test_shapes_of_sample_and_act(data):
    policy, _ = _policy(data)
    policy.eval()
    image = torch.zeros(3, 1, 3, 32, 32, dtype=torch.uint8)
    actions, video = policy.sample(image, torch.zeros(3, policy.text_encoder.dim), torch.zeros(3, 1, 4))
    assert actions.shape == (3, 8, 4) and actions.abs().max() <= 1
    assert video.shape == (3, 2, 4, 8, 8)  # 2 generated frames of 8x8x4 latents (32 px / 4)
    env = vp_envs.make("vp/metaworld-reach-v3", width=32, height=32)
    obs, info = env.reset(options={"episode": 0})
    assert policy.act(obs, info).shape == (4,)
    assert policy.generated[0].shape == (1, 2, 32, 32, 3) and policy.generated[0].dtype == np.uint8
    env.close()
    # frames of another size are resized in and the generated video resized back to the observation's size
    policy.reset()
    env = vp_envs.make("vp/metaworld-reach-v3", width=48, height=48)
    obs, info = env.reset(options={"episode": 0})
    assert policy.act(obs, info).shape == (4,)
    assert policy.generated[0].shape == (1, 2, 48, 48, 3)
    env.close()


def test_two_cameras_are_generated_together():
    cfg = {**TINY, "cameras": ["corner2", "corner3"]}
    from vp_agent.data import MinMax

    stats = {k: MinMax(-np.ones(4, np.float32), np.ones(4, np.float32)) for k in ("action", "state")}
    policy = make_policy("video_policy", cfg, stats, 4, 4).eval()
    actions, video = policy.sample(torch.zeros(2, 2, 3, 32, 32, dtype=torch.uint8),
                                   torch.zeros(2, policy.text_encoder.dim), torch.zeros(2, 1, 4))
    assert actions.shape == (2, 8, 4) and video.shape == (2, 4, 4, 8, 8)  # 2 cameras x 2 frames
    obs = {"state": np.zeros((2, 4), np.float32),
           "pixels": {c: np.zeros((2, 32, 32, 3), np.uint8) for c in ("corner2", "corner3")}}
    assert policy.act(obs, {"instruction": np.array(["a", "b"])}).shape == (2, 4)
    assert policy.generated[1].shape == (2, 2, 32, 32, 3)


def _step(policy, ds, stage, idx):
    policy.set_stage(stage)
    policy.train()
    opt = torch.optim.Adam(policy.trainable_parameters(), lr=1e-2)
    torch.manual_seed(3)
    loss = policy(_batch(ds, idx, "cpu"))["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_stop_gradient_action_step_leaves_video_model_unchanged(data):
    policy, ds = _policy(data)
    idx = torch.as_tensor(ds.indices("action")[:4])
    video, head = _params(policy.unet), _params(policy.action_unet)
    _step(policy, ds, "action", idx)
    assert not _changed(video, policy.unet), "the action loss updated the video model"
    assert all(p.grad is None for p in policy.unet.parameters())
    assert _changed(head, policy.action_unet)
    _step(policy, ds, "joint", idx)  # the ablation without the stop-gradient does update it
    assert _changed(video, policy.unet)


def test_action_free_video_trains_only_the_video_model(data):
    policy, ds = _policy(data)
    free = [i for i, (e, _) in enumerate(ds.index) if ds.actions[e] is None][:4]
    video, head, vae = _params(policy.unet), _params(policy.action_unet), _params(policy.vae)
    _step(policy, ds, "video", torch.as_tensor(free))
    assert _changed(video, policy.unet)
    assert not _changed(head, policy.action_unet) and not _changed(vae, policy.vae)


def test_video_training_lowers_the_loss_on_a_fixed_batch(data):
    policy, ds = _policy(data)
    policy.set_stage("video")
    policy.train()
    idx = torch.arange(0, len(ds), max(1, len(ds) // 8))[:8]
    batch = _batch(ds, idx, "cpu")
    opt = torch.optim.Adam(policy.trainable_parameters(), lr=2e-3)

    def loss():
        torch.manual_seed(4)
        return policy(batch)["loss"]

    before = loss().item()
    for _ in range(20):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.7 * before


def test_save_load_gives_identical_actions_and_video(data, tmp_path):
    policy, _ = _policy(data)
    policy.eval()
    policy.save(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    assert bool(loaded.latent_fitted) and torch.equal(loaded.latent_std, policy.latent_std)
    env = vp_envs.make("vp/metaworld-reach-v3", width=32, height=32)
    obs, info = env.reset(options={"episode": 0})
    torch.manual_seed(5)
    a = policy.act(obs, info)
    torch.manual_seed(5)
    b = loaded.act(obs, info)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(policy.generated[0], loaded.generated[0])
    env.close()


def test_staged_training_writes_each_stage_and_resumes(data, tmp_path, monkeypatch):
    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path / "textcache"))
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {
        "policy": {"name": "video_policy", "config": TINY}, "data": [str(p) for p in data],
        "out_dir": str(tmp_path / "run"), "save_every": 1, "log_every": 1})
    ckpt = train(cfg)
    for stage in ("vae", "video", "action", "last"):
        assert (tmp_path / "run" / "checkpoints" / stage / "model.safetensors").is_file()
    assert list((tmp_path / "run" / "cache").glob("latents-*.pt")), "latents are cached on disk"
    stages = [json.loads(line)["stage"] for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert stages == ["vae"] * 2 + ["video"] * 2 + ["action"] * 2
    before = (ckpt / "model.safetensors").read_bytes()
    train(cfg)  # everything finished: nothing is retrained
    assert len((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()) == 6
    assert (ckpt / "model.safetensors").read_bytes() == before
    assert load_policy(ckpt).act  # loadable
    from eval.policies import training_record  # what vp-eval's manifest says about this checkpoint

    record = training_record(ckpt)
    assert (record["method"], record["episodes_per_task"], record["seed"]) == ("video_policy", 2, 0)
    assert record["action_free_data"] == [str(data[1])]
    # a second run reuses the first one's autoencoder: it starts at the video stage
    cfg2 = OmegaConf.merge(cfg, {"out_dir": str(tmp_path / "run2"),
                                 "init_from": str(tmp_path / "run" / "checkpoints" / "vae")})
    train(cfg2)
    stages2 = [json.loads(line)["stage"] for line in (tmp_path / "run2" / "train_log.jsonl").read_text().splitlines()]
    assert stages2 == ["video"] * 2 + ["action"] * 2
    a, b = load_policy(tmp_path / "run" / "checkpoints" / "vae"), load_policy(tmp_path / "run2" / "checkpoints" / "last")
    assert all(torch.equal(v, b.vae.state_dict()[k]) for k, v in a.vae.state_dict().items())
    # an ablation of the action head on one video model: other feature blocks, only the action stage runs
    cfg3 = OmegaConf.merge(cfg, {"out_dir": str(tmp_path / "run3"), "policy": {"config": {"feature_blocks": ["mid"]}},
                                 "init_from": str(tmp_path / "run2" / "checkpoints" / "video")})
    train(cfg3)
    stages3 = [json.loads(line)["stage"] for line in (tmp_path / "run3" / "train_log.jsonl").read_text().splitlines()]
    assert stages3 == ["action"] * 2
    c, v = load_policy(tmp_path / "run3" / "checkpoints" / "last"), load_policy(tmp_path / "run2" / "checkpoints" / "video")
    assert list(c.poolers) == ["mid"]
    assert all(torch.equal(t, c.unet.state_dict()[k]) for k, t in v.unet.state_dict().items())


def test_pretrained_autoencoder_and_unet_load_from_local_dirs(tmp_path):
    """The from_pretrained path (SVD's vae/unet folders on a GPU machine) on tiny models saved here."""
    from diffusers import AutoencoderKL, UNetSpatioTemporalConditionModel

    from vp_agent.data import MinMax

    stats = {k: MinMax(-np.ones(4, np.float32), np.ones(4, np.float32)) for k in ("action", "state")}
    donor = make_policy("video_policy", TINY, stats, 4, 4)
    donor.vae.save_pretrained(tmp_path / "vae")
    unet = UNetSpatioTemporalConditionModel(  # a cross-attention size unlike the text encoder's
        in_channels=8, out_channels=4, block_out_channels=(32, 32), num_attention_heads=(1, 1),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), layers_per_block=1,
        cross_attention_dim=48, addition_time_embed_dim=32, projection_class_embeddings_input_dim=96, num_frames=2)
    unet.save_pretrained(tmp_path / "unet")
    policy = make_policy("video_policy", {**TINY, "vae_path": str(tmp_path / "vae"), "unet_path": str(tmp_path / "unet")},
                         stats, 4, 4)
    assert isinstance(policy.vae, AutoencoderKL)
    for k, v in donor.vae.state_dict().items():
        assert torch.equal(policy.vae.state_dict()[k], v)
    assert isinstance(policy.text_proj, torch.nn.Linear) and policy.text_proj.out_features == 48
    assert [s[0] for s in policy.training_stages(policy.config)] == ["video", "action"]  # no vae stage
    actions, _ = policy.eval().sample(torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8),
                                      torch.zeros(1, policy.text_encoder.dim), torch.zeros(1, 1, 4))
    assert actions.shape == (1, 8, 4)


def test_svd_parameterization_denoises_as_diffusers_svd_pipeline(tmp_path):
    """A tiny U-Net saved in SVD's configuration denoises through our wrapper (parameterization=svd) exactly as
    through diffusers' own SVD preconditioning: EulerDiscreteScheduler with v-prediction and continuous
    timesteps, the conditioning frame's unscaled posterior mode concatenated on channels, the pipeline's
    added time ids (fps 7 - 1, motion bucket 127, noise aug 0.02). With EDM's sigma_data 0.5 preconditioning a
    pretrained SVD would start from a wrongly scaled, sign-flipped output."""
    from diffusers import EulerDiscreteScheduler, UNetSpatioTemporalConditionModel

    from vp_agent.data import MinMax

    stats = {k: MinMax(-np.ones(4, np.float32), np.ones(4, np.float32)) for k in ("action", "state")}
    torch.manual_seed(0)
    make_policy("video_policy", TINY, stats, 4, 4).vae.save_pretrained(tmp_path / "vae")
    UNetSpatioTemporalConditionModel(
        in_channels=8, out_channels=4, block_out_channels=(32, 32), num_attention_heads=(1, 1),
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), layers_per_block=1,
        cross_attention_dim=48, addition_time_embed_dim=32, projection_class_embeddings_input_dim=96,
        num_frames=2).save_pretrained(tmp_path / "unet")
    policy = make_policy("video_policy", {**TINY, "vae_path": str(tmp_path / "vae"), "unet_path": str(tmp_path / "unet"),
                                          "parameterization": "svd"}, stats, 4, 4).eval()
    frames = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    text = torch.randn(1, policy.text_encoder.dim)
    with torch.no_grad():
        # what the SVD pipeline conditions on: the frame's posterior mode, unscaled
        image_latents = policy.vae.encode(frames.float() / 127.5 - 1).latent_dist.mode()
        ours_cond = policy._conditioning_latent(policy.encode_frames(frames))
        torch.testing.assert_close(ours_cond, image_latents, rtol=1e-5, atol=1e-5)
        sched = EulerDiscreteScheduler(prediction_type="v_prediction", timestep_type="continuous",
                                       use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0)
        sched.set_timesteps(4)
        x = torch.randn(1, 2, 4, 8, 8) * sched.init_noise_sigma
        ids = torch.tensor([[6.0, 127.0, 0.02]])
        for i, t in enumerate(sched.timesteps):
            inp = torch.cat([sched.scale_model_input(x, t), image_latents[:, None].repeat(1, 2, 1, 1, 1)], dim=2)
            out = policy.unet(inp, t, policy._context(text), ids).sample
            step = sched.step(out, t, x)
            ours = policy._video_denoise(x, sched.sigmas[i].expand(1), image_latents[:, None], text)
            torch.testing.assert_close(ours, step.pred_original_sample, rtol=1e-4, atol=1e-4)
            x = step.prev_sample
    # and the latents the video model sees are the autoencoder's, times its scaling factor (SVD's space)
    z = policy.vae.encode(frames.float() / 127.5 - 1).latent_dist.mean
    torch.testing.assert_close(policy.encode_frames(frames), z * policy.vae.config.scaling_factor)
    with pytest.raises(ValueError, match="unknown parameterization 'v'; known: edm, svd"):
        VideoPolicyConfig(parameterization="v")


def test_keypoint_pooler_keeps_where_and_when_the_mean_pooler_loses():
    """pool=keypoints: a feature that moves within a frame, or appears in another frame, changes the pooled
    vector; the global mean cannot tell (the same values, permuted)."""
    from vp_agent.data import MinMax
    from vp_agent.policies.video_policy.modeling_video_policy import FeaturePooler

    torch.manual_seed(0)
    mean = FeaturePooler(4, 8, 16, "mean", frames=2)
    keys = FeaturePooler(4, 8, 16, "keypoints", frames=2)
    keys.load_state_dict(mean.state_dict())
    blob = torch.zeros(1, 4, 2, 8, 8)
    blob[..., 0, 1, 1] = 5.0  # a bright spot in the top-left of frame 0
    moved = blob.roll(shifts=(5, 5), dims=(3, 4))  # ... in the bottom-right
    later = blob.roll(shifts=1, dims=2)  # ... in frame 1 instead
    noise = torch.zeros(1, 16)
    with torch.no_grad():
        m = [mean(x, noise) for x in (blob, moved, later)]
        k = [keys(x, noise) for x in (blob, moved, later)]
    assert k[0].shape == (1, 8 * (1 + 2 * 2)) and keys.out_dim == 40 and mean.out_dim == 8
    assert (k[0] - k[1]).abs().max() > 0.1 and (k[0] - k[2]).abs().max() > 0.1
    # zero padding makes the mean pooler only nearly blind; the keypoints move by far more
    assert (k[0] - k[1]).abs().max() > 10 * (m[0] - m[1]).abs().max()
    stats = {key: MinMax(-np.ones(4, np.float32), np.ones(4, np.float32)) for key in ("action", "state")}
    policy = make_policy("video_policy", {**TINY, "pool": "keypoints"}, stats, 4, 4).eval()
    actions, _ = policy.sample(torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, policy.text_encoder.dim),
                               torch.zeros(1, 1, 4))
    assert actions.shape == (1, 8, 4)
    with pytest.raises(ValueError, match="unknown pool 'max'; known: mean, keypoints"):
        VideoPolicyConfig(pool="max")


def test_the_head_reads_the_current_frames_latent_when_asked_and_only_then():
    """feature_blocks + 'latent': the conditioning frame's latent reaches the action head beside the U-Net
    blocks (a frame that differs gives other head features even with the U-Net's features held fixed); without
    it, the head sees the frame only through the U-Net."""
    from vp_agent.data import MinMax

    stats = {key: MinMax(-np.ones(4, np.float32), np.ones(4, np.float32)) for key in ("action", "state")}
    torch.manual_seed(0)
    policy = make_policy("video_policy", {**TINY, "pool": "keypoints", "feature_blocks": ["mid", "latent"]},
                         stats, 4, 4).eval()
    assert policy.fuse[0].in_features == 2 * policy.poolers["mid"].out_dim
    text = torch.zeros(1, policy.text_encoder.dim)
    x = torch.randn(1, policy.config.num_frames, 4, policy.latent_size, policy.latent_size)
    sigma = torch.ones(1)
    cond = torch.randn(1, 1, 4, policy.latent_size, policy.latent_size)
    with torch.no_grad():
        policy._video_denoise(x, sigma, cond, text)
        assert torch.equal(policy._features["latent"][0], cond[0, 0])
        first = policy._read_features(sigma, 1)
        policy._features["latent"] = policy._features["latent"] + 1.0  # another frame, same U-Net features
        assert (policy._read_features(sigma, 1) - first).abs().max() > 1e-3
    plain = make_policy("video_policy", {**TINY, "pool": "keypoints"}, stats, 4, 4).eval()
    with torch.no_grad():
        plain._video_denoise(x, sigma, cond, text)
    assert "latent" not in plain._features
    actions, _ = policy.sample(torch.zeros(1, 1, 3, 32, 32, dtype=torch.uint8), text, torch.zeros(1, 1, 4))
    assert actions.shape == (1, 8, 4)


def test_config_errors_list_valid_values():
    with pytest.raises(ValueError, match="unknown feature_blocks .*valid: mid, up0, up1, latent"):
        VideoPolicyConfig(feature_blocks=("down0",))
    with pytest.raises(ValueError, match="horizon .* multiple of frame_stride"):
        VideoPolicyConfig(horizon=18)
    with pytest.raises(ValueError, match="unknown stages"):
        VideoPolicyConfig(stage_steps={"pretrain": 5})
    gpu = video_policy_gpu()
    assert (gpu.horizon, gpu.n_action_steps, gpu.num_inference_steps, gpu.guidance) == (32, 16, 30, 2.0)


def test_bad_init_from_and_offline_setting_are_clear_errors(data, tmp_path, capsys):
    from vp_agent import offline
    from vp_agent.policies.base import CheckpointError

    policy, _ = _policy(data)
    policy.save(tmp_path / "plain")  # a checkpoint, but not a training stage's
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {
        "policy": {"name": "video_policy", "config": TINY}, "data": [str(p) for p in data],
        "out_dir": str(tmp_path / "run"), "init_from": str(tmp_path / "plain")})
    with pytest.raises(CheckpointError, match="needs a stage checkpoint .*vae, video, action"):
        train(cfg)
    assert offline.main([str(tmp_path / "plain"), str(data[0]), "--set", "not_a_knob=1"]) == 2
    assert "VideoPolicyConfig has no setting 'not_a_knob'" in capsys.readouterr().err
    assert offline.main([str(tmp_path / "nowhere"), str(data[0])]) == 2
    assert "does not exist" in capsys.readouterr().err
    bc = make_policy("bc", {"text_encoder": "hashing", "camera": "corner2"}, policy.stats, policy.state_dim,
                     policy.action_dim)
    bc.save(tmp_path / "bc")
    assert offline.main([str(tmp_path / "bc"), str(data[0]), "--real-future"]) == 2
    err = capsys.readouterr().err
    assert "--real-future scores a Video Policy's action head" in err and err.count("\n") == 1


def test_offline_scorer_scores_action_free_video_on_video_alone(data):
    from vp_agent.offline import evaluate

    policy, _ = _policy(data)
    scores = evaluate(policy, [str(data[1])], windows=2)  # door-close, no actions anywhere
    assert scores["windows"] == 2 and scores["action_mse"] is None
    assert 0 < scores["video_psnr"] < 99 and 0 < scores["recon_psnr"] < 99
    with pytest.raises(Exception, match="no episodes with actions"):
        VideoDataset([data[1]], horizon=8, frame_stride=4)  # training still needs actions somewhere


def test_gpu_preset_is_selectable_from_vp_train():
    from hydra import compose, initialize

    import vp_agent.train  # noqa: F401  (registers the configs)

    with initialize(version_base=None, config_path=None):
        cfg = compose(config_name="train", overrides=["policy=video_policy_gpu", "data=[d]"])
    assert cfg.policy.name == "video_policy"  # the class it builds
    assert (cfg.policy.config.image_size, cfg.policy.config.horizon, cfg.policy.config.guidance) == (256, 32, 2.0)


def test_training_twice_with_one_seed_gives_identical_weights(data, tmp_path, monkeypatch):
    """A leaderboard row names its recipe and seed: rerunning them must give the same checkpoint (on one machine)."""
    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path / "textcache"))
    weights = []
    for run in ("a", "b"):
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {
            "policy": {"name": "video_policy", "config": TINY}, "data": [str(data[0])],
            "out_dir": str(tmp_path / run), "seed": 3, "threads": 1})
        weights.append((train(cfg) / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


def test_offline_image_use_check_leaves_the_video_score_alone(data):
    """The image-use variants run the policy again; the video PSNR must still score the unperturbed window."""
    from vp_agent.offline import evaluate

    policy, _ = _policy(data)
    plain = evaluate(policy, [str(data[0])], windows=2)
    checked = evaluate(policy, [str(data[0])], windows=2, image_use=True)
    assert checked["video_psnr"] == pytest.approx(plain["video_psnr"], abs=1e-9)
    assert checked["image_use"]["noise_image"] > 0 and checked["image_use"]["shuffled_state"] >= 0


def test_real_future_ceiling_feeds_the_head_features_of_the_real_future_noised_like_training(data):
    """The inverse-dynamics ceiling: at every sampling step the video U-Net sees real future latents plus the
    step's sigma times one fixed noise (the training input), never the sampler's own video."""
    policy, ds = _policy(data)
    policy.eval()
    item = ds[3]
    real = item["latents"][:, 1:].flatten(0, 1)[None]  # (1, cams*F, C, h, w)
    seen, plain = [], policy._video_denoise

    def record(x, sigma, cond, text):
        seen.append(((x - real) / sigma.view(-1, 1, 1, 1, 1)).clone())
        return plain(x, sigma, cond, text)

    policy._video_denoise = record
    torch.manual_seed(0)
    actions, video = policy.sample(item["image"][None], item["text"][None], item["state"][None], real_future=real)
    assert len(seen) == policy.config.num_inference_steps and torch.equal(video, real)
    for eps in seen[1:]:
        torch.testing.assert_close(eps, seen[0], atol=1e-3, rtol=1e-3)  # one noise, rescaled per step: x = real + sigma * eps
    assert abs(float(seen[0].std()) - 1) < 0.3
    with pytest.raises(ValueError, match="guidance"):
        policy.config.guidance = 2.0
        policy.sample(item["image"][None], item["text"][None], item["state"][None], real_future=real)


def test_offline_error_split_scores_the_head_on_real_and_generated_futures_per_task(data):
    from vp_agent.offline import evaluate

    policy, _ = _policy(data)
    policy.eval()
    scores = evaluate(policy, [str(data[0])], windows=3, real_future=True)
    assert scores["action_mse"] > 0 and scores["action_mse_real_future"] > 0
    assert scores["action_mse_real_future"] != scores["action_mse"]  # other features, other actions
    assert set(scores["per_task"]) == {"reach-v3"}
    task = scores["per_task"]["reach-v3"]
    assert task["windows"] == 3 and task["action_mse"] == pytest.approx(scores["action_mse"])
    assert task["recon_psnr"] == pytest.approx(scores["recon_psnr"])


def test_offline_scorer_handles_frames_larger_than_the_autoencoder_size(data):
    """A dataset recorded at 32 px scored by a policy whose autoencoder works at 16 px: generated and
    reconstructed frames are compared at the frames' size."""
    from vp_agent.offline import evaluate

    policy, _ = _policy(data, image_size=16)
    policy.eval()
    scores = evaluate(policy, [str(data[0])], windows=2, real_future=True)
    assert 0 < scores["recon_psnr"] < 99 and 0 < scores["video_psnr"] < 99


def test_ema_averages_each_stage_and_the_saved_policy_acts_with_it(data, tmp_path, monkeypatch):
    """ema_power: each stage saves (and hands on) the moving average of the weights it trains, not the raw
    ones; the frozen parts are untouched; a resume of finished stages gives the same final checkpoint."""
    from safetensors.torch import load_file

    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path / "textcache"))
    steps = {"vae": 2, "video": 2, "action": 6}
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {
        "policy": {"name": "video_policy", "config": {**TINY, "ema_power": 0.75, "stage_steps": steps}},
        "data": [str(data[0])], "out_dir": str(tmp_path / "run"), "save_every": 100, "log_every": 1})
    last = train(cfg)
    run = tmp_path / "run" / "checkpoints"
    action = load_file(str(run / "action" / "model.safetensors"))
    raw = torch.load(run / "action" / "training_state.pt", weights_only=False)["raw_weights"]
    head = [k for k in action if k.startswith("action_unet.")]
    assert any(not torch.equal(action[k], raw[k]) for k in head)  # the head saved is the average, not raw
    video = load_file(str(run / "video" / "model.safetensors"))
    assert all(torch.equal(action[k], video[k]) for k in action if k.startswith("unet."))  # frozen: as handed on
    final = load_file(str(last / "model.safetensors"))
    assert all(torch.equal(final[k], action[k]) for k in action)  # `last` is the averaged policy
    before = (last / "model.safetensors").read_bytes()
    train(cfg)  # every stage finished: the same checkpoint again
    assert (last / "model.safetensors").read_bytes() == before
    with pytest.raises(ValueError, match="ema_power must be None or positive"):
        VideoPolicyConfig(**{**TINY, "ema_power": 0.0})


def test_learning_curve_places_the_final_checkpoint_at_the_end_of_the_action_stage(data, tmp_path, monkeypatch):
    """keep_every counts steps within the action stage while the final `last` records all stages' steps:
    the curve must put `last` at the action stage's end (the same weights as its final snapshot), not as a
    separate, later point."""
    from safetensors.torch import load_file

    from eval.curve import snapshots

    monkeypatch.setenv("VP_BENCH_CACHE", str(tmp_path / "textcache"))
    cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), {
        "policy": {"name": "video_policy", "config": {**TINY, "stage_steps": {"vae": 2, "video": 2, "action": 4}}},
        "data": [str(data[0])], "out_dir": str(tmp_path / "run"), "save_every": 100, "log_every": 1,
        "keep_every": 2})
    last = train(cfg)
    assert json.loads((last / "config.json").read_text())["trained_steps"] == 8  # all stages
    found = snapshots(tmp_path / "run")
    assert [s for s, _ in found] == [2, 4]
    a = load_file(str(found[-1][1] / "model.safetensors"))
    b = load_file(str(last / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("feature_steps", [None, 2])
def test_each_action_step_reads_the_pooled_features_of_its_video_pass(data, feature_steps):
    """sample() runs the video chain first and pools every pass's features in one batched call; each action step
    must still get what pooling right after its pass gives (the last pass's, past ``feature_steps``)."""
    policy, ds = _policy(data, feature_steps=feature_steps)
    policy.eval()
    item = ds[3]
    passes, given, video, action = [], [], policy._video_denoise, policy._action_denoise

    def record_video(x, sigma, cond, text):
        out = video(x, sigma, cond, text)
        passes.append(policy._read_features(sigma, len(x)))  # pooled on its own, right after the pass
        return out

    def record_action(a, sigma, features, text, state):
        given.append(features.clone())
        return action(a, sigma, features, text, state)

    policy._video_denoise, policy._action_denoise = record_video, record_action
    with torch.no_grad():
        policy.sample(item["image"][None], item["text"][None], item["state"][None], noise_seeds=[7])
    steps = policy.config.num_inference_steps
    assert len(passes) == (feature_steps or steps) and len(given) == steps
    for i, features in enumerate(given):
        torch.testing.assert_close(features, passes[min(i, len(passes) - 1)], atol=1e-5, rtol=1e-5)


def test_one_token_cross_attention_shortcut_matches_diffusers_attention(data):
    """With one text token, cross-attention is to_out(to_v(text)) at every query; at inference the video U-Net
    takes that shortcut (OneTokenCrossAttnProcessor), in training diffusers' own attention runs unchanged."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from vp_agent.policies.video_policy.modeling_video_policy import OneTokenCrossAttnProcessor

    policy, ds = _policy(data)
    item = ds[3]
    lat = item["latents"][None, 0, 1:][None].flatten(1, 2)  # (1, F, C, h, w)
    cond = policy._conditioning_latent(item["latents"][None, :, 0])
    sigma, text = torch.tensor([1.5]), item["text"][None]
    cross = [m for n, m in policy.unet.named_modules() if n.endswith("attn2")]
    assert cross and all(isinstance(m.processor, OneTokenCrossAttnProcessor) for m in cross)
    policy.eval()
    with torch.no_grad():
        fast = policy._video_denoise(lat, sigma, cond, text)
        fast_features = {k: v.clone() for k, v in policy._features.items()}
        for m in cross:
            m.set_processor(AttnProcessor2_0())
        plain = policy._video_denoise(lat, sigma, cond, text)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-4)  # float rounding: one row projected, not N
    for k, v in policy._features.items():
        torch.testing.assert_close(fast_features[k], v, atol=1e-5, rtol=1e-4)
    for m in cross:
        m.set_processor(OneTokenCrossAttnProcessor())
    policy.train()
    policy._video_denoise(lat, sigma, cond, text).square().mean().backward()  # training: the full attention
    assert all(m.to_q.weight.grad is not None for m in cross)
