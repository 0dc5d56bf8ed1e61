"""Behaviour cloning: image encoder + state + task embedding -> MLP -> action(s), regression loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from vp_agent.policies.base import TorchPolicy
from vp_agent.policies.bc.configuration_bc import BCConfig


class BCPolicy(TorchPolicy):
    """robomimic-style BC over pixels, state and the task sentence (see :class:`BCConfig`)."""

    name = "bc"
    config_class = BCConfig

    def __init__(self, config: BCConfig, stats, state_dim: int, action_dim: int):
        super().__init__(config, stats, state_dim, action_dim)
        in_dim = self.build_observation_encoder()
        layers, d = [], in_dim
        for h in config.hidden_dims:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, config.horizon * action_dim))
        self.mlp = nn.Sequential(*layers)

    def predict_action_chunk(self, batch):
        out = self.mlp(self.encode_observations(batch)).view(-1, self.config.horizon, self.action_dim)
        return out.clamp(-1, 1)

    def forward(self, batch):
        pred = self.mlp(self.encode_observations(batch)).view(-1, self.config.horizon, self.action_dim)
        err = F.mse_loss(pred, batch["action"], reduction="none")
        mask = (~batch["action_is_pad"]).unsqueeze(-1).float()
        return {"loss": (err * mask).sum() / mask.expand_as(err).sum().clamp(min=1)}
