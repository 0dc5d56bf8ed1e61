"""Configuration of Diffusion Policy (Chi et al., RSS 2023), CNN-based, at CPU scale."""

from __future__ import annotations

from dataclasses import dataclass

from vp_agent.policies.modules import check_observation_config


@dataclass
class DiffusionConfig:
    """Every knob of :class:`~vp_agent.policies.diffusion.modeling_diffusion.DiffusionPolicy`.

    Paper defaults are kept where they fit a 2-core CPU; the others say what the paper used.

    Attributes:
        camera, use_image, use_state, state_source, text_encoder: as in BC.
        n_obs: observation steps (paper: 2).
        horizon: predicted action steps (paper: 16).
        n_action_steps: executed before replanning (paper: 8).
        crop: random-crop size at training, centre crop at inference (paper: 84 of 96, ~90%; 58 of 64 here).
        encoder_channels, feature_dim: image encoder (paper: ResNet-18 with GroupNorm, spatial softmax).
        down_dims: U-Net widths (paper: 256, 512, 1024; 64, 128, 256 here, ~5.5M parameters).
        kernel_size, step_embed_dim: U-Net conv kernel and diffusion-step embedding (paper: 5, 128).
        num_train_timesteps: DDPM training steps (paper: 100), squared-cosine schedule, epsilon prediction.
        num_inference_steps: DDIM steps at inference (paper: 100 DDPM steps; 10 DDIM steps here for CPU
            latency, as the paper's real-robot setup does with DDIM).
        lr, weight_decay: AdamW (paper: 1e-4, 1e-6).
        ema_power: EMA warm-up power (paper: 0.75, max decay 0.9999).
    """

    camera: str = "corner2"
    use_image: bool = True
    use_state: bool = True
    state_source: str = "state"
    text_encoder: str = "minilm"
    n_obs: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    crop: int = 58
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 128
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    step_embed_dim: int = 128
    num_train_timesteps: int = 100
    num_inference_steps: int = 10
    lr: float = 1e-4
    weight_decay: float = 1e-6
    ema_power: float = 0.75

    def __post_init__(self):
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs + 1:
            raise ValueError(f"n_action_steps must be in 1..horizon-n_obs+1 = {self.horizon - self.n_obs + 1}; "
                             f"got {self.n_action_steps}")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"horizon must be divisible by {factor} for down_dims {tuple(self.down_dims)}; "
                             f"got {self.horizon}")
        check_observation_config(self)
        if self.text_encoder not in ("minilm", "hashing"):
            raise ValueError(f"unknown text_encoder {self.text_encoder!r}; known: minilm, hashing")
