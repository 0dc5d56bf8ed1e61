"""Configuration of Video Policy (Liang et al. 2025): an image-to-video latent diffusion model whose
intermediate U-Net features drive an action diffusion head. ``VideoPolicyConfig()`` is the CPU default
(``video_policy_cpu``); :func:`video_policy_gpu` is the paper-scale config."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

STAGES = ("vae", "video", "action", "joint")
PARAMETERIZATIONS = ("edm", "svd")
POOLS = ("mean", "keypoints")  # how the action head pools video features (VideoPolicyConfig.pool)  # how the video U-Net is preconditioned (VideoPolicyConfig.parameterization)


@dataclass
class VideoPolicyConfig:
    """Every knob of :class:`~vp_agent.policies.video_policy.modeling_video_policy.VideoPolicy`.

    Shapes (defaults): the policy sees the current 64x64 frame of each camera, the autoencoder maps it to an
    8x8x4 latent (SVD's 8x spatial compression), and the video model generates ``horizon / frame_stride`` = 4
    future latent frames per camera (one every 4 control steps, as the paper), which span the 16-step action
    chunk the action head denoises in lock-step.

    Attributes:
        camera: first camera (the base policy's history key); ``cameras`` lists all generated cameras.
        cameras: cameras generated together (their frames are stacked on the frame axis, each conditioned on
            its own current frame, as the paper stacks wrist/left/right). Default: just ``camera``.
        use_state: condition the action head on the robot state too (the paper uses none; our baselines do,
            so the CPU default does, for a like-for-like comparison).
        text_encoder: task-text encoder (``minilm`` | ``hashing``); its embedding is the cross-attention
            context of the video U-Net (the paper swaps SVD's CLIP image embedding for CLIP text).
        n_obs: observation steps (1: the current frame conditions the video).
        horizon: action steps per chunk (paper: 32); n_action_steps: executed before replanning (paper: 16).
        frame_stride: control steps per generated video frame (paper: 4).
        image_size: frame size the autoencoder sees.
        vae_channels, latent_channels, vae_path: AutoencoderKL widths (len = number of levels; 2**(len-1) =
            spatial compression) and latent channels; ``vae_path`` loads a pretrained one instead
            (``AutoencoderKL.from_pretrained``, e.g. SVD's ``vae`` folder) and skips the ``vae`` stage.
        video_model: a pretrained video model folder (``python -m vp_agent.export_video``, e.g. from a
            video-pretraining run on action-free videos): ``vp-train`` starts the autoencoder, the video U-Net
            and the latent normalisation from its weights (``from_pretrained``) and skips the ``vae`` stage;
            the ``video`` stage then fine-tunes it. The architecture fields here must match the folder's
            (checked). Only training reads the folder: a checkpoint trained from it loads without it.
        finetune_vae: with ``vae_path`` or ``video_model``, train the pretrained autoencoder on this run's
            frames for ``stage_steps['vae']`` steps at ``stage_lrs['vae']`` instead of skipping the stage (an
            autoencoder pretrained on other tasks can miss this data's objects). From ``video_model`` the latent
            normalisation stays the pretrained one, so the video U-Net reads latents on the scale it was trained
            on; from ``vae_path`` alone it is fitted afterwards, on the fine-tuned autoencoder's latents.
        vae_kl_weight: KL weight of the autoencoder loss (LDM: 1e-6; no GAN/perceptual loss at our scale).
        unet_channels, unet_heads, unet_layers: UNetSpatioTemporalConditionModel widths per level, attention
            heads per level, ResNet layers per block; ``unet_path`` loads a pretrained one (e.g. SVD's ``unet``)
            and replaces its cross-attention context projection when the text size differs.
        feature_blocks: video U-Net blocks the action head reads: 'mid' (bottleneck) or 'up<i>' (decoder
            block i, 0 = lowest resolution); the paper reads the bottleneck and the decoder blocks. 'latent'
            (not in the paper) adds the current frame's autoencoder latent, pooled like a block: the head then
            reads the frame beside the video model's features (recipe vp-headlatent-lite-v2, where probes found
            the U-Net features lose what the latent holds).
        pool_channels, feature_dim: the 3-D conv pooler per block and camera, and the fused feature size.
        pool: how the pooler reduces its (channels, frames, h, w) map: ``mean`` (global average, the default
            so far) or ``keypoints`` (the mean plus a spatial-softmax position per channel and generated frame:
            keeps where and when).
        action_down_dims, kernel_size, step_embed_dim: the 1-D temporal U-Net of the action head (as DP's).
        sigma_min, sigma_max, sigma_data, rho: EDM (Karras) noise levels; p_mean, p_std: log-normal training
            noise distribution (EDM: -1.2, 1.2). Video latents are scaled to std ``sigma_data`` like actions.
        parameterization: how the video U-Net's output and inputs are read. ``edm`` (from scratch): EDM
            preconditioning at ``sigma_data``, per-channel latent normalisation fitted on the data. ``svd``:
            Stable Video Diffusion's own, which a pretrained SVD U-Net (``unet_path``) needs to keep its prior:
            v-prediction with sigma_data 1 (diffusers' EulerDiscreteScheduler, ``v_prediction``, continuous
            timesteps ``0.25 log sigma``), latents times the autoencoder's ``scaling_factor``, the conditioning
            frame's latent unscaled (the posterior mode, as the SVD pipeline), and ``svd_time_ids``. The action
            head keeps EDM at ``sigma_data`` either way.
        svd_time_ids: SVD's added time ids under ``svd``: (fps - 1, motion bucket, noise augmentation), the
            pipeline's defaults (fps 7, 127, 0.02). The conditioning frame is not noise-augmented here (its
            latent is cached), so the 0.02 is a conditioning value only.
        num_inference_steps: Euler steps (paper: 30); feature_steps: run the video U-Net only for the first
            ``feature_steps`` steps and finish the action denoising on the last features read (None = all,
            the paper's lock-step; 1 = one video pass, the cheapest).
        guidance: classifier-free guidance scale on video and actions (paper: 2.0; 1.0 = off, one pass).
        cond_dropout: probability of dropping text and conditioning frame in training (paper: 0.1).
        stage_steps: optimiser steps per training stage, in order (a stage with 0 steps is skipped).
        stage_lrs: learning rate per stage (paper: 1e-5 for fine-tuning a pretrained model; from scratch
            needs more).
        stage_batch: batch size per stage (overrides vp-train's batch_size).
        weight_decay: AdamW weight decay.
        ema_power: None (default): no EMA. A number: every stage keeps an exponential moving average of the
            weights it trains (diffusers' EMAModel with warm-up power ``ema_power``, as Diffusion Policy's 0.75)
            and ends by copying it into the policy, so later stages and the saved policy use the averaged
            weights (Diffusion Policy evaluates its EMA weights; the action head trained without one).
        decode_video: decode generated latents to frames at inference (needed to save generated videos).
    """

    camera: str = "corner2"
    cameras: tuple[str, ...] = ()
    use_state: bool = True
    text_encoder: str = "minilm"
    n_obs: int = 1
    horizon: int = 16
    n_action_steps: int = 8
    frame_stride: int = 4
    image_size: int = 64
    vae_channels: tuple[int, ...] = (16, 32, 64, 64)
    latent_channels: int = 4
    vae_path: str | None = None
    video_model: str | None = None
    finetune_vae: bool = False
    vae_kl_weight: float = 1e-6
    unet_channels: tuple[int, ...] = (32, 64)
    unet_heads: tuple[int, ...] = (2, 4)
    unet_layers: int = 1
    unet_path: str | None = None
    feature_blocks: tuple[str, ...] = ("mid", "up0", "up1")
    pool_channels: int = 64
    pool: str = "mean"
    feature_dim: int = 128
    action_down_dims: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 5
    step_embed_dim: int = 128
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    parameterization: str = "edm"
    svd_time_ids: tuple[float, float, float] = (6.0, 127.0, 0.02)
    rho: float = 7.0
    p_mean: float = -1.2
    p_std: float = 1.2
    num_inference_steps: int = 10
    feature_steps: int | None = None
    guidance: float = 1.0
    cond_dropout: float = 0.1
    stage_steps: dict[str, int] = field(default_factory=lambda: {"vae": 800, "video": 2000, "action": 2000,
                                                                 "joint": 0})
    stage_lrs: dict[str, float] = field(default_factory=lambda: {"vae": 1e-3, "video": 5e-4, "action": 3e-4,
                                                               "joint": 1e-4})
    stage_batch: dict[str, int] = field(default_factory=lambda: {"vae": 32, "video": 16, "action": 32,
                                                                "joint": 16})
    weight_decay: float = 1e-6
    ema_power: float | None = None
    decode_video: bool = True

    def __post_init__(self):
        self.cameras = tuple(self.cameras) or (self.camera,)
        if self.cameras[0] != self.camera:
            raise ValueError(f"cameras must start with camera={self.camera!r}; got {list(self.cameras)} (to train on "
                             f"one camera, set both: policy.config.camera=X 'policy.config.cameras=[X]')")
        if self.n_obs != 1:
            raise ValueError(f"Video Policy conditions on the current frame only: n_obs must be 1, got {self.n_obs}")
        if self.horizon % self.frame_stride:
            raise ValueError(f"horizon ({self.horizon}) must be a multiple of frame_stride ({self.frame_stride})")
        if not 1 <= self.n_action_steps <= self.horizon:
            raise ValueError(f"n_action_steps must be in 1..horizon={self.horizon}; got {self.n_action_steps}")
        factor = 2 ** (len(self.action_down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"horizon must be divisible by {factor} for action_down_dims "
                             f"{tuple(self.action_down_dims)}; got {self.horizon}")
        if len(self.unet_heads) != len(self.unet_channels):
            raise ValueError(f"unet_heads {list(self.unet_heads)} needs one entry per unet_channels level "
                             f"{list(self.unet_channels)}")
        valid = ["mid"] + [f"up{i}" for i in range(len(self.unet_channels))] + ["latent"]
        bad = [b for b in self.feature_blocks if b not in valid]
        if bad or not self.feature_blocks:
            raise ValueError(f"unknown feature_blocks {bad or '[]'}; valid: {', '.join(valid)}")
        unknown = set(self.stage_steps) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)} in stage_steps; valid: {', '.join(STAGES)}")
        if self.ema_power is not None and not self.ema_power > 0:
            raise ValueError(f"ema_power must be None or positive (Diffusion Policy: 0.75); got {self.ema_power}")
        if self.feature_steps is not None and not 1 <= self.feature_steps <= self.num_inference_steps:
            raise ValueError(f"feature_steps must be None or in 1..num_inference_steps={self.num_inference_steps}")
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}; known: {', '.join(POOLS)}")
        if self.finetune_vae and not (self.vae_path or self.video_model):
            raise ValueError("finetune_vae fine-tunes a pretrained autoencoder: set video_model or vae_path "
                             "(without either the vae stage trains one from scratch anyway)")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"unknown parameterization {self.parameterization!r}; known: {', '.join(PARAMETERIZATIONS)}")
        if len(self.svd_time_ids) != 3:
            raise ValueError(f"svd_time_ids needs 3 values (fps - 1, motion bucket, noise aug); got {list(self.svd_time_ids)}")
        if self.text_encoder not in ("minilm", "hashing"):
            raise ValueError(f"unknown text_encoder {self.text_encoder!r}; known: minilm, hashing")

    @property
    def num_frames(self) -> int:
        """Generated frames per camera."""
        return self.horizon // self.frame_stride


def video_policy_cpu(**overrides) -> VideoPolicyConfig:
    """The CPU default: ~1.5M-parameter video U-Net on 8x8x4 latents, 10 Euler steps, no guidance."""
    return replace(VideoPolicyConfig(), **overrides)


def video_policy_gpu(**overrides) -> VideoPolicyConfig:
    """The paper's scale, for a GPU: 256x256 frames (32x32x4 latents with SVD's VAE), 8 frames per camera
    spanning a 32-step chunk (16 executed), 30 Euler steps, guidance 2.0, SVD's U-Net widths. Point
    ``vae_path`` / ``unet_path`` at a local copy of stabilityai/stable-video-diffusion-img2vid's ``vae`` and
    ``unet`` folders, with ``parameterization="svd"`` (SVD's own preconditioning and latent scaling), to
    fine-tune the pretrained model, as the paper does."""
    base = VideoPolicyConfig(
        image_size=256, horizon=32, n_action_steps=16, frame_stride=4, vae_channels=(128, 256, 512, 512),
        unet_channels=(320, 640, 1280, 1280), unet_heads=(5, 10, 20, 20), unet_layers=2,
        feature_blocks=("mid", "up0", "up1", "up2", "up3"), pool_channels=256, feature_dim=512,
        action_down_dims=(256, 512, 1024), num_inference_steps=30, guidance=2.0, use_state=False,
        stage_steps={"vae": 0, "video": 100_000, "action": 100_000, "joint": 0},
        stage_lrs={"vae": 1e-4, "video": 1e-5, "action": 1e-4, "joint": 1e-5},
        stage_batch={"vae": 32, "video": 32, "action": 32, "joint": 32})
    return replace(base, **overrides)
