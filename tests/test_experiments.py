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


@pytest.mark.parametrize("script", ["sample_efficiency.sh", "robosuite_lite.sh", "metaworld_lite.sh"])
def test_unknown_method_lists_the_known_ones(script):
    out = run(script, "nope", "5:0")
    assert out.returncode == 2 and "unknown method 'nope'; known: bc, diffusion, video_policy" in out.stderr


def test_robosuite_v2_script_refuses_an_unknown_method_before_recording_anything():
    out = run("robosuite_lite_v2.sh", "nope")
    assert out.returncode == 2 and "unknown method 'nope'; known: references bc bc-state dp" in out.stderr
    assert "vp-data" not in out.stderr


def test_unknown_protocol_lists_the_known_ones():
    out = run("sample_efficiency.sh", "bc", "5:0", PROTOCOL="nope")
    assert out.returncode == 2
    assert "known: metaworld-lite, metaworld-lite-v2, robosuite-lite, robosuite-lite-v2" in out.stderr


@pytest.mark.parametrize("protocol", ["metaworld-lite-v2", "robosuite-lite-v2"])
def test_v2_sweep_knows_the_pretrained_video_policy_and_the_state_ceilings(protocol):
    out = run("sample_efficiency.sh", "nope", "5:0", PROTOCOL=protocol)
    assert out.returncode == 2
    assert "known: bc, bc_state, dp_state, diffusion, video_policy, video_policy_pretrained" in out.stderr


def test_v2_sweep_unknown_recipe_variant_lists_the_recipes():
    out = run("sample_efficiency.sh", "video_policy_pretrained", "5:0", PROTOCOL="metaworld-lite-v2", RECIPE="nope")
    assert out.returncode == 2 and "unknown RECIPE 'nope'; known: " in out.stderr
    assert "vp-pretrained-aeft-lite-v2" in out.stderr


def test_recipe_variant_on_a_v1_protocol_is_refused():
    out = run("sample_efficiency.sh", "bc", "5:0", RECIPE="bc-lite-v2")  # default PROTOCOL: metaworld-lite
    assert out.returncode == 2 and "recipe variants are Hydra recipes of the version-2 protocols" in out.stderr


def test_robosuite_v2_sweep_is_accepted_and_checks_its_dataset(tmp_path):
    out = run("sample_efficiency.sh", "bc", "5:0", PROTOCOL="robosuite-lite-v2", DATA=str(tmp_path / "absent"))
    assert out.returncode == 2 and f"no finished dataset at {tmp_path / 'absent'}" in out.stderr


def test_missing_dataset_is_named(tmp_path):
    out = run("sample_efficiency.sh", "bc", "5:0", DATA=str(tmp_path / "absent"))
    assert out.returncode == 2 and f"no finished dataset at {tmp_path / 'absent'}" in out.stderr
    # a recording still under way (or interrupted) lists its remaining tasks as pending: not trained on
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "manifest.json").write_text('{"tasks": {"reach-v3": {}}, "pending": ["push-v3"]}')
    out = run("sample_efficiency.sh", "bc", "5:0", DATA=str(partial))
    assert out.returncode == 2 and f"no finished dataset at {partial}" in out.stderr


def test_init_from_without_that_run_names_the_missing_checkpoint(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    out = run("sample_efficiency.sh", "video_policy", "1:0", PROTOCOL="metaworld-lite-v2", DATA=str(tmp_path),
              RECIPE="vp-ema-lite-v2", INIT_FROM="nope:video")
    assert out.returncode == 2
    assert "no stage checkpoint at runs/train/se-metaworld-lite-v2/nope-1demos-seed0/checkpoints/video" in out.stderr


def recipe_overrides(method: str, camera: str | None) -> list[str]:
    """The vp-train overrides a sweep passes for ``method`` (and ``camera``, as on robosuite-lite)."""
    snippet = 'source experiments/recipes.sh; set_recipe "$0"; camera=(); [ -z "$1" ] || set_camera "$0" "$1"; ' \
              'printf "%s\\0" "${recipe[@]}" ${camera[@]+"${camera[@]}"}'
    out = subprocess.run(["bash", "-c", snippet, method, camera or ""], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return [a for a in out.stdout.split("\0") if a]


@pytest.mark.parametrize("camera", [None, "agentview"])
@pytest.mark.parametrize("method", ["bc", "diffusion", "video_policy"])
def test_every_recipe_builds_its_policy_config(method, camera):
    # Each sweep's arguments must make a valid config: robosuite's camera once failed Video Policy's check
    # that `cameras` starts with `camera`, after the demonstrations were recorded.
    from hydra import compose, initialize
    from omegaconf import OmegaConf

    import vp_agent.train  # noqa: F401 - registers the configs
    from vp_agent.policies.registry import POLICIES

    with initialize(version_base=None):
        cfg = compose("train", overrides=[f"policy={method}", *recipe_overrides(method, camera)])
    config = POLICIES[method].config_class(**OmegaConf.to_container(cfg.policy.config, resolve=True))
    assert config.camera == (camera or "corner2")


def test_every_recipe_composes_into_a_valid_training_config():
    """`vp-train +recipe=<name>`: each file of vp_agent/conf/recipe builds its policy's config."""
    from pathlib import Path

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import vp_agent.train  # noqa: F401  (registers the structured configs)
    from vp_agent.policies.registry import POLICIES

    names = sorted(p.stem for p in (Path(vp_agent.train.__file__).parent / "conf" / "recipe").glob("*.yaml"))
    assert {"bc-lite-v2", "bc-state-lite-v2", "dp-lite-v2", "vp-lite-v2", "vp-head9k-lite-v2",
            "vp-ae8-lite-v2", "vp-aelong-lite-v2", "vp-headlatent-lite-v2",
            "vp-pretrain-metaworld", "vp-pretrained-lite-v2", "vp-pretrained-aeft-lite-v2"} <= set(names)
    with initialize_config_module(config_module="vp_agent.conf", version_base=None):
        for name in names:
            cfg = compose(config_name="train", overrides=[f"+recipe={name}", "data=[x]"])
            policy = POLICIES[cfg.policy.name]
            config = policy.config_class(**OmegaConf.to_container(cfg.policy.config, resolve=True))
            assert cfg.lr_schedule == "cosine", name
            if name.endswith("-state-lite-v2"):  # bc-state, dp-state: the privileged-state ceilings
                assert not config.use_image and config.state_source == "privileged"
            elif name.startswith("vp"):  # Video Policy: no crop knob; the head reads keypoints
                assert config.cameras == ("corner4",) and config.pool == "keypoints" and config.cond_dropout == 0
                if name == "vp-pretrain-metaworld":  # video pretraining: no action head
                    assert config.stage_steps["action"] == 0 and config.video_model is None
                elif name == "vp-pretrained-lite-v2":  # starts from the pretrained video model, fine-tunes it
                    assert config.video_model and config.stage_steps["video"] > 0
                    assert [s[0] for s in policy.training_stages(config)] == ["video", "action"]
                elif name in ("vp-pretrained-aeft-lite-v2", "vp-pretrained-long-lite-v2"):  # the same, AE fine-tuned first
                    assert config.video_model and config.finetune_vae
                    assert [s[0] for s in policy.training_stages(config)] == ["vae", "video", "action"]
                    assert config.stage_lrs["vae"] < 1e-3  # a fine-tune: below the from-scratch rate
                elif name == "vp-pretrained-long-joint-lite-v2":  # the ablation: joint in place of action, same
                    assert [s[0] for s in policy.training_stages(config)] == ["vae", "video", "joint"]
                    assert (config.stage_steps["joint"], config.stage_lrs["joint"], config.stage_batch["joint"]) == (
                        3000, 3.0e-4, 32)  # steps, rate and batch as the stop-gradient recipe's action stage
                else:
                    assert config.stage_steps["action"] == (9000 if "head9k" in name else 3000), name
                    assert config.ema_power == (0.75 if "ema" in name else None), name
                    assert config.stage_steps["video"] == 3000, name
                    # the autoencoder fixes tried on robosuite-lite-v2's Stack: 8 latent channels, or 3x the steps
                    assert config.latent_channels == (8 if "ae8" in name else 4), name
                    assert config.stage_steps["vae"] == (2400 if "aelong" in name or "headlatent" in name else 800), name
                    # the head fix tried: it also reads the current frame's latent
                    assert ("latent" in config.feature_blocks) == ("headlatent" in name), name
                # a pretrained video model fits the runs that reuse it: one architecture and image size
                assert (config.image_size, tuple(config.unet_channels), tuple(config.vae_channels)) == (64, (32, 64),
                                                                                          (16, 32, 64, 64)), name
            else:
                assert config.camera == "corner4" and config.crop == 0
