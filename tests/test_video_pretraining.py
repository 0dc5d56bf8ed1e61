"""Video pretraining: a run on action-free videos only, its video model exported as diffusers folders, and a
run that starts from it (method ``video_policy_pretrained``)."""

import json
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from vp_agent import load_policy
from vp_agent.export_video import main as export_main
from vp_agent.train import TrainConfig, train
from vp_envs.datagen import generate

TINY = dict(text_encoder="hashing", image_size=32, vae_channels=[8, 16, 16], unet_channels=[32, 32],
            unet_heads=[1, 1], horizon=8, frame_stride=4, n_action_steps=4, action_down_dims=[16, 32],
            pool_channels=16, feature_dim=32, step_embed_dim=32, num_inference_steps=3,
            stage_batch={"vae": 4, "video": 4, "action": 4})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    video = tmp_path_factory.mktemp("pretrain_video")
    generate("metaworld", ["door-close-v3", "drawer-close-v3"], "train", 1, video, size=32, drop_actions=True,
             progress=False)
    demos = tmp_path_factory.mktemp("pretrain_demos")
    generate("metaworld", ["reach-v3"], "train", 2, demos, size=32, progress=False)
    return video, demos


def _cfg(tmp_path, name, data, stage_steps, **config):
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), {
        "policy": {"name": "video_policy", "config": {**TINY, "stage_steps": stage_steps, **config}},
        "data": [str(data)], "out_dir": str(tmp_path / name), "seed": 0, "log_every": 1, "save_every": 1000})


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    """A video pretraining run on action-free videos alone, exported."""
    tmp = tmp_path_factory.mktemp("pretrain_run")
    train(_cfg(tmp, "pre", data[0], {"vae": 2, "video": 3, "action": 0}))
    assert export_main([str(tmp / "pre" / "checkpoints" / "video"), str(tmp / "video_model")]) == 0
    return tmp / "pre", tmp / "video_model"


def test_pretraining_on_action_free_video_alone_exports_diffusers_folders(pretrained):
    from diffusers import AutoencoderKL, UNetSpatioTemporalConditionModel

    run, folder = pretrained
    stages = [json.loads(line)["stage"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert stages == ["vae"] * 2 + ["video"] * 3  # no action head without actions
    source = load_policy(run / "checkpoints" / "video")
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    unet = UNetSpatioTemporalConditionModel.from_pretrained(folder / "unet")
    for mine, loaded in ((source.vae, vae), (source.unet, unet)):
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in mine.state_dict().items())
    meta = json.loads((folder / "video_model.json").read_text())
    assert torch.allclose(torch.tensor(meta["latent_mean"]), source.latent_mean)
    assert meta["source"]["datasets"] and all(d["action_free"] for d in meta["source"]["datasets"].values())
    assert sorted(next(iter(meta["source"]["datasets"].values()))["tasks"]) == ["door-close-v3", "drawer-close-v3"]


def test_a_run_from_the_pretrained_video_model_skips_the_autoencoder_and_keeps_its_weights(pretrained, data,
                                                                                           tmp_path):
    from eval.policies import training_record

    _, folder = pretrained
    source = load_policy(pretrained[0] / "checkpoints" / "video")
    cfg = _cfg(tmp_path, "fine", data[1], {"vae": 2, "video": 1, "action": 2}, video_model=str(folder))
    ckpt = train(cfg)
    stages = [json.loads(line)["stage"] for line in (tmp_path / "fine" / "train_log.jsonl").read_text().splitlines()]
    assert stages == ["video"] + ["action"] * 2  # the autoencoder is pretrained
    tuned = load_policy(ckpt)
    assert all(torch.equal(v, tuned.vae.state_dict()[k]) for k, v in source.vae.state_dict().items())
    assert torch.equal(tuned.latent_mean, source.latent_mean) and torch.equal(tuned.latent_std, source.latent_std)
    # the video stage fine-tuned the pretrained U-Net (it moved, from the pretrained start)
    moved = [k for k, v in source.unet.state_dict().items() if not torch.equal(v, tuned.unet.state_dict()[k])]
    assert moved
    record = training_record(ckpt)
    assert record["method"] == "video_policy_pretrained"
    # the recipe names the folder; the record names its weights (the hash of the folder's files)
    from vp_agent.policies.interface import sha256_dir

    assert record["video_model_sha256"] == sha256_dir(folder)
    # only training reads the folder: the checkpoint loads without it
    shutil.move(str(folder), str(tmp_path / "moved"))
    try:
        again = load_policy(ckpt)
        assert all(torch.equal(v, again.state_dict()[k]) for k, v in tuned.state_dict().items())
    finally:
        shutil.move(str(tmp_path / "moved"), str(folder))


def test_finetune_vae_trains_the_pretrained_autoencoder_and_keeps_its_latent_normalisation(pretrained, data,
                                                                                            tmp_path):
    _, folder = pretrained
    source = load_policy(pretrained[0] / "checkpoints" / "video")
    cfg = _cfg(tmp_path, "ft", data[1], {"vae": 2, "video": 1, "action": 1}, video_model=str(folder),
               finetune_vae=True)
    tuned = load_policy(train(cfg))
    stages = [json.loads(line)["stage"] for line in (tmp_path / "ft" / "train_log.jsonl").read_text().splitlines()]
    assert stages == ["vae"] * 2 + ["video", "action"]
    # the autoencoder started from the pretrained one and moved on this run's frames
    start = load_policy(tmp_path / "ft" / "checkpoints" / "vae")
    assert any(not torch.equal(v, start.vae.state_dict()[k]) for k, v in source.vae.state_dict().items())
    flat = lambda m: torch.cat([v.flatten().float() for v in m.state_dict().values()])  # noqa: E731
    assert (flat(start.vae) - flat(source.vae)).norm() < 0.2 * flat(source.vae).norm()  # a fine-tune, not a new AE
    assert torch.equal(flat(tuned.vae), flat(start.vae))  # later stages keep it
    assert torch.equal(tuned.latent_mean, source.latent_mean) and torch.equal(tuned.latent_std, source.latent_std)


def test_finetune_vae_without_a_pretrained_autoencoder_is_a_clear_error():
    from vp_agent.policies.video_policy.configuration_video_policy import VideoPolicyConfig

    with pytest.raises(ValueError, match="finetune_vae fine-tunes a pretrained autoencoder: set video_model or vae_path"):
        VideoPolicyConfig(**TINY, finetune_vae=True)


def test_evaluating_a_checkpoint_without_a_trained_action_head_is_a_clear_error(pretrained):
    from eval.policies import PolicySpecError, load_policy_spec

    run, _ = pretrained
    for stage in ("video", "last"):  # a pretraining run's final checkpoint is its video stage's
        with pytest.raises(PolicySpecError, match="'video' training stage: its action head never trained"):
            load_policy_spec(str(run / "checkpoints" / stage))


def test_a_video_model_of_other_settings_or_a_bad_folder_is_a_clear_error(pretrained, data, tmp_path, capsys):
    _, folder = pretrained
    with pytest.raises(ValueError, match="other settings: image_size 32 .this config: 16."):
        train(_cfg(tmp_path, "a", data[1], {"vae": 2, "video": 1, "action": 1}, video_model=str(folder),
                   image_size=16))
    with pytest.raises(ValueError, match="does not fit this config's architecture"):
        train(_cfg(tmp_path, "b", data[1], {"vae": 2, "video": 1, "action": 1}, video_model=str(folder),
                   unet_channels=[32, 64]))
    with pytest.raises(ValueError, match="not a video model folder"):
        train(_cfg(tmp_path, "c", data[1], {"vae": 2, "video": 1, "action": 1}, video_model=str(tmp_path)))
    # an action-free dataset cannot train an action head
    with pytest.raises(Exception, match="no episodes with actions"):
        train(_cfg(tmp_path, "d", data[0], {"vae": 1, "video": 1, "action": 1}))


def test_export_of_a_missing_untrained_or_non_video_checkpoint_is_one_line_exit_2(pretrained, tmp_path, capsys):
    import numpy as np

    from vp_agent import make_policy
    from vp_agent.data import MinMax

    stats = {k: MinMax(-np.ones(4, np.float32), np.ones(4, np.float32)) for k in ("action", "state")}
    make_policy("bc", {"text_encoder": "hashing"}, stats, 4, 4).save(tmp_path / "bc")
    cases = {tmp_path / "nothing": "does not exist", tmp_path / "bc": "is a bc policy",
             pretrained[0] / "checkpoints" / "vae": "no latent normalisation yet"}  # an autoencoder-stage checkpoint
    for ckpt, why in cases.items():
        assert export_main([str(ckpt), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("vp_agent.export_video: error:") and why in err and "\n" not in err, err
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp").exists()


def test_a_video_model_folder_of_another_format_is_refused(pretrained, data, tmp_path):
    shutil.copytree(pretrained[1], tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "video_model.json").read_text())
    (tmp_path / "old" / "video_model.json").write_text(json.dumps({**meta, "format": "vp-bench-video-model/0"}))
    with pytest.raises(ValueError, match="format 'vp-bench-video-model/0', expected 'vp-bench-video-model/1'"):
        train(_cfg(tmp_path, "e", data[1], {"vae": 2, "video": 1, "action": 1}, video_model=str(tmp_path / "old")))
