"""Diffusion Policy: a conditional 1-D temporal U-Net denoises an action chunk, conditioned (FiLM) on image
features of the last ``n_obs`` frames, the robot state and the task embedding. DDPM noise schedule in
training and DDIM sampling at inference, both from diffusers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler

from vp_agent.policies.base import TorchPolicy
from vp_agent.policies.diffusion.configuration_diffusion import DiffusionConfig
from vp_agent.policies.modules import ConditionalUnet1D


class DiffusionPolicy(TorchPolicy):
    """Chi et al.'s CNN-based Diffusion Policy (see :class:`DiffusionConfig`)."""

    name = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, stats, state_dim: int, action_dim: int):
        super().__init__(config, stats, state_dim, action_dim)
        cond_dim = self.build_observation_encoder()
        self.unet = ConditionalUnet1D(action_dim, cond_dim, tuple(config.down_dims), config.kernel_size,
                                      config.step_embed_dim)
        schedule = dict(num_train_timesteps=config.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                        clip_sample=True, prediction_type="epsilon")
        self.train_scheduler = DDPMScheduler(**schedule)
        self.sample_scheduler = DDIMScheduler(**schedule, set_alpha_to_one=True, steps_offset=0)

    def forward(self, batch):
        cond = self.encode_observations(batch)
        actions = batch["action"]
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.config.num_train_timesteps, (len(actions),), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, t)
        pred = self.unet(noisy, t, cond)
        err = F.mse_loss(pred, noise, reduction="none")
        mask = (~batch["action_is_pad"]).unsqueeze(-1).float()
        return {"loss": (err * mask).sum() / mask.expand_as(err).sum().clamp(min=1)}

    def predict_action_chunk(self, batch):
        cond = self.encode_observations(batch)
        sample = self.initial_noise(batch, (self.config.horizon, self.action_dim), cond.device)
        self.sample_scheduler.set_timesteps(self.config.num_inference_steps)
        for t in self.sample_scheduler.timesteps:
            eps = self.unet(sample, t.expand(len(cond)).to(cond.device), cond)
            sample = self.sample_scheduler.step(eps, t, sample).prev_sample
        return sample.clamp(-1, 1)
