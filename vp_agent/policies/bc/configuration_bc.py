"""Configuration of plain behaviour cloning (robomimic's BC with an image encoder)."""

from __future__ import annotations

from dataclasses import dataclass

from vp_agent.policies.modules import check_observation_config


@dataclass
class BCConfig:
    """Every knob of :class:`~vp_agent.policies.bc.modeling_bc.BCPolicy`.

    Attributes:
        camera: camera key the policy sees.
        use_image: read the camera (False: a state-only policy; with ``state_source="privileged"`` it is the
            privileged-state ceiling ``bc_state``: what the recipe learns from the simulator's full state).
        use_state: feed the robot state beside the image.
        state_source: ``state`` (the env's observation, proprioception by default) or ``privileged`` (the
            simulator's full state from ``info["privileged_state"]``; a reference, never a contender).
        text_encoder: name of the task-text encoder (``minilm`` | ``hashing``).
        n_obs: observation steps in (1: robomimic's BC is Markovian).
        horizon: actions predicted per call (1: plain per-step BC).
        n_action_steps: actions executed before predicting again (<= horizon).
        crop: random-crop size for augmentation at training (centre crop at inference); 0 = off.
        encoder_channels: ResNet widths of the image encoder.
        feature_dim: image feature size.
        hidden_dims: MLP widths (robomimic's BC uses two layers of 1024; 512 fits our CPU scale).
        lr, weight_decay: AdamW settings (robomimic: 1e-4; 1e-3 converges faster at our small batch count).
    """

    camera: str = "corner2"
    use_image: bool = True
    use_state: bool = True
    state_source: str = "state"
    text_encoder: str = "minilm"
    n_obs: int = 1
    horizon: int = 1
    n_action_steps: int = 1
    crop: int = 58
    encoder_channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 128
    hidden_dims: tuple[int, ...] = (512, 512)
    lr: float = 1e-3
    weight_decay: float = 1e-6

    def __post_init__(self):
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs + 1:
            raise ValueError(f"n_action_steps must be in 1..horizon-n_obs+1 = {self.horizon - self.n_obs + 1}; "
                             f"got {self.n_action_steps}")
        check_observation_config(self)
        if self.text_encoder not in ("minilm", "hashing"):
            raise ValueError(f"unknown text_encoder {self.text_encoder!r}; known: minilm, hashing")
