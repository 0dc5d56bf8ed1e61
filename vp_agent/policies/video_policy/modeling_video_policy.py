"""Video Policy (Liang et al. 2025, "Video Generators are Robot Policies"), built on diffusers.

Three networks, trained in stages (``config.stage_steps``):

1. ``vae`` -- an ``AutoencoderKL`` maps each 64x64 frame to an 8x8x4 latent (or a pretrained one is loaded).
   The dataset's latents are then computed once and cached (:meth:`VideoPolicy.prepare_dataset`).
2. ``video`` -- an image-to-video latent diffusion model on ``UNetSpatioTemporalConditionModel`` (SVD's U-Net)
   generates the next F latent frames of every camera from the current frame (its latent concatenated on
   channels to each generated frame) and the task sentence (cross-attention). Action-free videos train it too.
3. ``action`` -- the video model is frozen (the stop-gradient: its features are computed under ``no_grad``)
   and an action head is trained: a 3-D conv pooler per feature block reads the video U-Net's bottleneck and
   decoder features per camera, sees the noise level, and the fused vector FiLM-conditions a 1-D temporal
   U-Net (Diffusion Policy's) that denoises the action chunk. ``joint`` trains both without the stop-gradient
   (the paper's ablation).

Noise: EDM (Karras et al. 2022) preconditioning and log-normal training noise; a sample's video latents and its
action chunk share one noise level. Inference denoises both in lock-step with diffusers' ``EDMEulerScheduler``:
each Euler step runs the video U-Net, reads its features, and steps the action denoiser with them.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, EDMEulerScheduler, UNetSpatioTemporalConditionModel
from torch import nn

from vp_agent.policies.base import TorchPolicy, finish_dir_swap, write_dir_atomically
from vp_agent.policies.modules import ConditionalUnet1D, SinusoidalPosEmb, seeded_noise
from vp_agent.policies.video_policy.configuration_video_policy import POOLS, STAGES, VideoPolicyConfig

log = logging.getLogger(__name__)
VIDEO_MODEL_FORMAT = "vp-bench-video-model/1"
# what a pretrained video model's generation depends on beyond its weights: a run that reuses it must match
VIDEO_MODEL_FIELDS = ("text_encoder", "image_size", "frame_stride", "num_frames", "parameterization",
                      "sigma_data")


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w, 3) uint8 frames -> (N, *size, 3) uint8 (bilinear); unchanged when already that size."""
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    x = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=tuple(size), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class OneTokenCrossAttnProcessor:
    """Cross-attention over a single context token, at inference: softmax over one key is exactly 1, so the
    output is ``to_out(to_v(context))`` for every query, whatever the queries and keys; this skips the query and
    key projections and the attention call (the video U-Net reads one text token per frame). Anything else
    (more tokens, a mask, a norm on the context, 4-D inputs, a module in training mode or gradients being taken,
    so that training, the action stage's no-grad video pass included, stays bit for bit what diffusers' own
    processor computes) goes to diffusers' ``AttnProcessor2_0``."""

    def __init__(self):
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.fallback = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        if (encoder_hidden_states is None or encoder_hidden_states.shape[1] != 1 or attention_mask is not None
                or hidden_states.ndim != 3 or attn.norm_cross or attn.spatial_norm is not None
                or attn.group_norm is not None or attn.training or torch.is_grad_enabled()):
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        out = attn.to_out[1](attn.to_out[0](attn.to_v(encoder_hidden_states)))  # (B, 1, dim)
        out = out.to(hidden_states.dtype).expand(-1, hidden_states.shape[1], -1)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


class FeaturePooler(nn.Module):
    """(B, C, F, h, w) video U-Net features + noise embedding -> (B, out) : two 3-D convs, FiLM by the noise
    level in between, then a pool (the paper's small 3-D conv net per block and camera).

    ``pool="mean"``: global average over frames, height and width (out = ``cout``): where things are and when
    they happen is averaged away. ``pool="keypoints"``: the mean plus, per channel and generated frame, the
    expected image position under a spatial softmax (out = ``cout * (1 + 2 * frames)``; Levine et al. 2016's
    keypoints, as robomimic's image encoders): the head can read where each feature is in each future frame.
    """

    def __init__(self, cin: int, cout: int, noise_dim: int, pool: str = "mean", frames: int = 1):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; known: {', '.join(POOLS)}")
        self.pool, self.out_dim = pool, cout * (1 + 2 * frames if pool == "keypoints" else 1)
        groups = 8 if cout % 8 == 0 else 1
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, cout)
        self.film = nn.Linear(noise_dim, 2 * cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout)

    def forward(self, x, noise_emb):
        h = F.silu(self.norm1(self.conv1(x)))
        scale, shift = self.film(noise_emb)[:, :, None, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = F.silu(self.norm2(self.conv2(h)))
        mean = h.mean(dim=(2, 3, 4))
        if self.pool == "mean":
            return mean
        b, c, f, hh, ww = h.shape
        attn = h.flatten(3).softmax(dim=-1).view(b, c, f, hh, ww)  # per channel and frame, over the image
        ys = torch.linspace(-1, 1, hh, device=h.device, dtype=h.dtype)
        xs = torch.linspace(-1, 1, ww, device=h.device, dtype=h.dtype)
        x = (attn.sum(dim=3) * xs).sum(dim=-1)  # (B, C, F) expected column
        y = (attn.sum(dim=4) * ys).sum(dim=-1)  # (B, C, F) expected row
        return torch.cat([mean, x.flatten(1), y.flatten(1)], dim=1)


class VideoPolicy(TorchPolicy):
    """Video generation as the policy (see module docstring and :class:`VideoPolicyConfig`)."""

    name = "video_policy"
    config_class = VideoPolicyConfig

    def __init__(self, config: VideoPolicyConfig, stats, state_dim: int, action_dim: int):
        super().__init__(config, stats, state_dim, action_dim)
        c = config
        self.stage = "action"
        self.vae = self._make_vae(c)
        self.latent_size = c.image_size // 2 ** (len(self.vae.config.block_out_channels) - 1)
        lc = self.vae.config.latent_channels
        # Per-channel latent normalisation to std sigma_data, fitted on the data when latents are first cached.
        self.register_buffer("latent_mean", torch.zeros(lc))
        self.register_buffer("latent_std", torch.ones(lc))
        self.register_buffer("latent_fitted", torch.tensor(False))
        self.unet = self._make_unet(c, lc)
        for name, module in self.unet.named_modules():  # the text is one cross-attention token
            if name.endswith("attn2"):
                module.set_processor(OneTokenCrossAttnProcessor())
        ctx = self.unet.config.cross_attention_dim
        ctx = ctx[0] if isinstance(ctx, (list, tuple)) else ctx
        self.text_proj = nn.Identity() if ctx == self.text_encoder.dim else nn.Linear(self.text_encoder.dim, ctx)
        # Action head: pooler per feature block, fusion, 1-D temporal U-Net.
        self.noise_embed = nn.Sequential(SinusoidalPosEmb(c.step_embed_dim), nn.Linear(c.step_embed_dim, c.step_embed_dim),
                                         nn.SiLU())
        block_ch = self._block_channels()
        self.poolers = nn.ModuleDict({b: FeaturePooler(block_ch[b], c.pool_channels, c.step_embed_dim, c.pool,
                                                       c.num_frames) for b in c.feature_blocks})
        pooled = self.poolers[c.feature_blocks[0]].out_dim
        self.fuse = nn.Sequential(nn.Linear(len(c.feature_blocks) * len(c.cameras) * pooled, c.feature_dim),
                                  nn.SiLU(), nn.Linear(c.feature_dim, c.feature_dim))
        cond_dim = c.feature_dim + self.text_encoder.dim + (state_dim if c.use_state else 0)
        self.action_unet = ConditionalUnet1D(action_dim, cond_dim, tuple(c.action_down_dims), c.kernel_size,
                                             c.step_embed_dim)
        self._features: dict[str, torch.Tensor] = {}
        for b in c.feature_blocks:
            if b == "latent":  # not a U-Net block: _video_denoise stores the conditioning latent
                continue
            module = self.unet.mid_block if b == "mid" else self.unet.up_blocks[int(b[2:])]
            module.register_forward_hook(self._hook(b))
        self.generated: dict[int, np.ndarray] = {}  # env slot -> last generated video (cams, F, H, W, 3) uint8

    # ------------------------------------------------------------------------------------------ building
    @staticmethod
    def _make_vae(c: VideoPolicyConfig) -> AutoencoderKL:
        if c.vae_path:
            return AutoencoderKL.from_pretrained(c.vae_path)
        n = len(c.vae_channels)
        return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                             up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(c.vae_channels),
                             layers_per_block=1, latent_channels=c.latent_channels,
                             norm_num_groups=min(32, min(c.vae_channels)), sample_size=c.image_size)

    @staticmethod
    def _make_unet(c: VideoPolicyConfig, latent_channels: int) -> UNetSpatioTemporalConditionModel:
        if c.unet_path:
            return UNetSpatioTemporalConditionModel.from_pretrained(c.unet_path)
        n = len(c.unet_channels)
        from vp_agent.text import make_text_encoder

        return UNetSpatioTemporalConditionModel(
            sample_size=None, in_channels=2 * latent_channels, out_channels=latent_channels,
            down_block_types=("CrossAttnDownBlockSpatioTemporal",) * (n - 1) + ("DownBlockSpatioTemporal",),
            up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * (n - 1),
            block_out_channels=tuple(c.unet_channels), addition_time_embed_dim=32,
            projection_class_embeddings_input_dim=96, layers_per_block=c.unet_layers,
            cross_attention_dim=make_text_encoder(c.text_encoder).dim, num_attention_heads=tuple(c.unet_heads),
            num_frames=c.num_frames * len(c.cameras))

    def _block_channels(self) -> dict[str, int]:
        ch = list(self.unet.config.block_out_channels)
        out = {"mid": ch[-1], "latent": self.vae.config.latent_channels}
        for i in range(len(ch)):
            out[f"up{i}"] = list(reversed(ch))[i]
        return out

    def _hook(self, name: str):
        def hook(module, args, output):
            self._features[name] = output[0] if isinstance(output, tuple) else output
        return hook

    # ------------------------------------------------------------------------------------ EDM helpers
    def _precond(self, sigma: torch.Tensor, ndim: int):
        sd = self.config.sigma_data
        s = sigma.view(-1, *([1] * (ndim - 1)))
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (s ** 2 + sd ** 2).sqrt()
        return c_skip, c_out, c_in

    def _loss_weight(self, sigma: torch.Tensor, sigma_data: float | None = None) -> torch.Tensor:
        sd = self.config.sigma_data if sigma_data is None else sigma_data
        return (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2

    @property
    def _svd(self) -> bool:
        return self.config.parameterization == "svd"

    def _video_precond(self, sigma: torch.Tensor, ndim: int):
        """(c_skip, c_out, c_in) of the video U-Net. ``svd``: v-prediction at sigma_data 1, i.e. diffusers'
        EulerDiscreteScheduler: denoised = x / (s^2 + 1) - out * s / sqrt(s^2 + 1), input x / sqrt(s^2 + 1)."""
        if not self._svd:
            return self._precond(sigma, ndim)
        s = sigma.view(-1, *([1] * (ndim - 1)))
        return 1 / (s ** 2 + 1), -s / (s ** 2 + 1).sqrt(), 1 / (s ** 2 + 1).sqrt()

    def _video_loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return self._loss_weight(sigma, 1.0 if self._svd else None)

    def _added_time_ids(self, b: int, device) -> torch.Tensor:
        # SVD's micro-conditioning (fps - 1, motion bucket, noise augmentation): SVD's own values for a
        # pretrained U-Net; from scratch they carry (frame stride, frames, 0)
        ids = self.config.svd_time_ids if self._svd else (self.config.frame_stride, self.config.num_frames, 0.0)
        return torch.tensor([list(map(float, ids))], device=device).expand(b, 3)

    def _conditioning_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The conditioning frame's latent from a model-space latent: unscaled under ``svd`` (the SVD
        pipeline feeds the posterior mode as is), unchanged under ``edm``."""
        return z / self.vae.config.scaling_factor if self._svd else z

    # -------------------------------------------------------------------------------------- latents
    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> [-1, 1] floats at ``config.image_size`` (frames of another size are resized)."""
        x = images.float().div(127.5).sub(1)
        if x.shape[-2:] != (self.config.image_size,) * 2:
            x = F.interpolate(x, size=(self.config.image_size,) * 2, mode="bilinear", align_corners=False)
        return x

    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> (N, C, h, w) normalised latents (posterior mean)."""
        z = self.vae.encode(self._pixels(images)).latent_dist.mean
        return self._normalize_latents(z)

    def _normalize_latents(self, z):
        if self._svd:
            return z * self.vae.config.scaling_factor
        shape = (1, -1, 1, 1)
        return (z - self.latent_mean.view(shape)) / self.latent_std.view(shape) * self.config.sigma_data

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) normalised latents -> (N, H, W, 3) uint8 frames."""
        shape = (1, -1, 1, 1)
        if self._svd:
            z = z / self.vae.config.scaling_factor
        else:
            z = z / self.config.sigma_data * self.latent_std.view(shape) + self.latent_mean.view(shape)
        x = self.vae.decode(z).sample
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)

    @torch.no_grad()
    def prepare_dataset(self, dataset, cache_dir: str | Path | None = None, batch_size: int = 256) -> None:
        """Encode every frame of ``dataset`` once (cached on disk in ``cache_dir``, keyed by the autoencoder's
        weights, the datasets' manifests and the size frames are resized to) and hand the latents to the dataset. The first call also fits
        the latent normalisation, which is then part of the checkpoint."""
        key = hashlib.sha256()
        for k, v in sorted(self.vae.state_dict().items()):
            key.update(k.encode())
            key.update(v.detach().cpu().numpy().tobytes())
        key.update(repr(sorted(dataset.manifests.items())).encode())
        key.update(repr(dataset.cameras).encode())
        key.update(repr([f.shape for f in dataset.frames]).encode())  # the episodes kept (tasks, budget)
        key.update(f"image_size={self.config.image_size}".encode())  # frames are resized to it before encoding
        path = Path(cache_dir) / f"latents-{key.hexdigest()[:16]}.pt" if cache_dir else None
        raw = None
        if path is not None and path.is_file():
            try:
                raw = torch.load(path, weights_only=True)
                log.info("latents from cache %s", path)
            except Exception as exc:  # noqa: BLE001 - a damaged cache is recomputed
                log.warning("latent cache %s unreadable (%s); recomputing", path, exc)
        if raw is None:
            was_training = self.vae.training
            self.vae.eval()
            raw = []
            from tqdm import tqdm

            for frames in tqdm(dataset.frames, desc="encoding frames to latents", unit="episode"):
                cams, T = frames.shape[:2]
                flat = torch.from_numpy(frames.reshape(cams * T, *frames.shape[2:])).permute(0, 3, 1, 2)
                x = self._pixels(flat)
                z = torch.cat([self.vae.encode(x[i:i + batch_size].to(self.device)).latent_dist.mean.cpu()
                               for i in range(0, len(x), batch_size)])
                raw.append(z.view(cams, T, *z.shape[1:]))
            self.vae.train(was_training)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save(raw, tmp)
                tmp.replace(path)
        if self._svd:
            dataset.latents = [z * self.vae.config.scaling_factor for z in raw]
            return
        if not bool(self.latent_fitted):
            allz = torch.cat([z.flatten(0, 1) for z in raw])
            self.latent_mean.copy_(allz.mean(dim=(0, 2, 3)))
            self.latent_std.copy_(allz.std(dim=(0, 2, 3)).clamp(min=1e-4))
            self.latent_fitted.fill_(True)
        shape = (1, 1, -1, 1, 1)
        dataset.latents = [((z - self.latent_mean.cpu().view(shape)) / self.latent_std.cpu().view(shape)
                            * self.config.sigma_data) for z in raw]

    # -------------------------------------------------------------------------------------- stages
    def set_stage(self, stage: str) -> None:
        """Freeze everything but what ``stage`` trains (``vae`` | ``video`` | ``action`` | ``joint``)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
        self.stage = stage
        trains = {"vae": ["vae"], "video": ["unet", "text_proj"],
                  "action": ["noise_embed", "poolers", "fuse", "action_unet"],
                  "joint": ["unet", "text_proj", "noise_embed", "poolers", "fuse", "action_unet"]}[stage]
        for name, child in self.named_children():
            child.requires_grad_(name in trains)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # ---------------------------------------------------------------------------------- video model
    def _context(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_proj(text).unsqueeze(1)  # (B, 1, ctx): one cross-attention token

    def _video_denoise(self, x, sigma, cond_latent, text):
        """One preconditioned video U-Net call. x: (B, cams*F, C, h, w) noisy latents at ``sigma`` (B,);
        cond_latent: (B, cams, C, h, w). Returns the denoised latents; the features land in ``_features``."""
        b = len(x)
        c_skip, c_out, c_in = self._video_precond(sigma, x.ndim)
        cond = cond_latent.repeat_interleave(self.config.num_frames, dim=1)
        if "latent" in self.config.feature_blocks:  # the current frame's latent, shaped as a block's features
            self._features["latent"] = cond.flatten(0, 1)
        inp = torch.cat([c_in * x, cond], dim=2)
        out = self.unet(inp, 0.25 * sigma.log(), self._context(text), self._added_time_ids(b, x.device)).sample
        return c_skip * x + c_out * out

    def _read_features(self, sigma: torch.Tensor, b: int) -> torch.Tensor:
        """Pool the hooked video U-Net features per block and camera -> (B, feature_dim)."""
        c = self.config
        cams, nf = len(c.cameras), c.num_frames
        noise = self.noise_embed(0.25 * sigma.log() * 1000)
        pooled = []
        for name in c.feature_blocks:
            f = self._features[name]  # (B*cams*F, ch, h, w)
            f = f.view(b, cams, nf, *f.shape[1:]).permute(0, 1, 3, 2, 4, 5)  # (B, cams, ch, F, h, w)
            for k in range(cams):
                pooled.append(self.poolers[name](f[:, k], noise))
        return self.fuse(torch.cat(pooled, -1))

    def _read_features_batched(self, stash: list[tuple[dict[str, torch.Tensor], torch.Tensor]]) -> list[torch.Tensor]:
        """:meth:`_read_features` of several video passes in one batched call: ``stash`` holds each pass's hooked
        features and its per-row sigma (all passes the same number of rows); returns one (rows, feature_dim)
        tensor per pass, as calling :meth:`_read_features` after each pass would (up to float rounding)."""
        rows = len(stash[0][1])
        self._features = {k: torch.cat([f[k] for f, _ in stash]) for k in stash[0][0]}
        return list(self._read_features(torch.cat([s for _, s in stash]), rows * len(stash)).split(rows))

    def _action_denoise(self, a, sigma, features, text, state):
        c_skip, c_out, c_in = self._precond(sigma, a.ndim)
        parts = [features, text] + ([state.flatten(1)] if self.config.use_state else [])
        out = self.action_unet(c_in * a, 0.25 * sigma.log() * 1000, torch.cat(parts, -1))
        return c_skip * a + c_out * out

    # -------------------------------------------------------------------------------------- training
    def forward(self, batch):
        if self.stage == "vae":
            return self._vae_loss(batch)
        c = self.config
        lat = batch["latents"]  # (B, cams, 1+F, C, h, w)
        b = len(lat)
        cond_latent, x0 = self._conditioning_latent(lat[:, :, 0]), lat[:, :, 1:].flatten(1, 2)
        text = batch["text"]
        if self.training and c.cond_dropout > 0:  # classifier-free guidance: drop text and frame together
            keep = (torch.rand(b, device=lat.device) >= c.cond_dropout).float()
            text = text * keep[:, None]
            cond_latent = cond_latent * keep[:, None, None, None, None]
        sigma = (torch.randn(b, device=lat.device) * c.p_std + c.p_mean).exp()
        x = x0 + sigma.view(-1, 1, 1, 1, 1) * torch.randn_like(x0)
        out = {}
        if self.stage == "video":
            denoised = self._video_denoise(x, sigma, cond_latent, text)
            out["loss"] = (self._video_loss_weight(sigma) * ((denoised - x0) ** 2).mean(dim=(1, 2, 3, 4))).mean()
            return out
        if self.stage == "action":  # the stop-gradient: the action loss never reaches the video model
            with torch.no_grad():
                self._video_denoise(x, sigma, cond_latent, text)
                self._features = {k: v.detach() for k, v in self._features.items()}
        else:  # joint: video loss plus action loss through the features
            denoised = self._video_denoise(x, sigma, cond_latent, text)
            out["video_loss"] = (self._video_loss_weight(sigma) * ((denoised - x0) ** 2).mean(dim=(1, 2, 3, 4))).mean()
        feats = self._read_features(sigma, b)
        a0 = batch["action"]
        a = a0 + sigma.view(-1, 1, 1) * torch.randn_like(a0)
        denoised_a = self._action_denoise(a, sigma, feats, text, batch["state"])
        mask = (~batch["action_is_pad"]).unsqueeze(-1).float() * batch["has_action"].float().view(-1, 1, 1)
        err = ((denoised_a - a0) ** 2 * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1)
        out["action_loss"] = (self._loss_weight(sigma) * err).mean()
        out["loss"] = out["action_loss"] + out.get("video_loss", 0.0)
        return out

    def _vae_loss(self, batch):
        x = self._pixels(batch["image"].flatten(0, 1))  # (B*cams, 3, H, W)
        posterior = self.vae.encode(x).latent_dist
        rec = self.vae.decode(posterior.sample()).sample
        recon = F.mse_loss(rec, x)
        kl = posterior.kl().mean() / x[0].numel()
        return {"loss": recon + self.config.vae_kl_weight * kl, "recon": recon}

    # ------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def sample(self, image: torch.Tensor, text: torch.Tensor, state: torch.Tensor, generator=None,
               noise_seeds: list[int] | None = None, real_future: torch.Tensor | None = None,
               features_out: list | None = None):
        """Lock-step sampling. image: (B, cams, 3, H, W) uint8 current frames; returns (actions (B, horizon, A)
        normalised, generated latents (B, cams*F, C, h, w)).

        ``real_future`` (B, cams*F, C, h, w), normalised latents of the real future frames: the inverse-dynamics
        ceiling (perfect video). The action head then reads, at every step, the video U-Net's features of the
        real future noised to that step's level with the same noise (the input it saw in training) instead of
        the sampler's own video; the video is not generated and ``real_future`` is returned as the video.

        ``features_out``, a list, receives the (B, feature_dim) features the action head read at each step, in
        step order (what ``python -m eval.probe`` asks about)."""
        c = self.config
        b, cams = image.shape[:2]
        cond_latent = self._conditioning_latent(self.encode_frames(image.flatten(0, 1))).view(
            b, cams, -1, self.latent_size, self.latent_size)
        lc = cond_latent.shape[2]
        video_sched, action_sched = (EDMEulerScheduler(sigma_min=c.sigma_min, sigma_max=c.sigma_max,
                                                       sigma_data=c.sigma_data, rho=c.rho) for _ in range(2))
        for s in (video_sched, action_sched):
            s.set_timesteps(c.num_inference_steps, device=image.device)
        dev = image.device
        x_shape = (cams * c.num_frames, lc, self.latent_size, self.latent_size)
        if noise_seeds is not None:  # per row: the noise depends on the episode and step only (see TorchPolicy.act)
            x, a = seeded_noise(noise_seeds, x_shape, (c.horizon, self.action_dim), device=dev)
        else:
            x = torch.randn(b, *x_shape, generator=generator, device=dev)
            a = torch.randn(b, c.horizon, self.action_dim, generator=generator, device=dev)
        eps = x
        x = x * video_sched.init_noise_sigma
        a = a * action_sched.init_noise_sigma
        guided = c.guidance != 1.0
        if real_future is not None and (guided or c.feature_steps is not None):
            raise ValueError("real_future (the inverse-dynamics ceiling) needs guidance=1.0 and feature_steps=None")
        if guided:  # unconditional half: no text, no conditioning frame
            text2 = torch.cat([text, torch.zeros_like(text)])
            cond2 = torch.cat([cond_latent, torch.zeros_like(cond_latent)])
            state2 = torch.cat([state, state])
        # The video chain never reads the actions, so it runs first, keeping the hooked U-Net features of every
        # step; the poolers then read all steps in one batched call (at one env slot about 3x faster than a call
        # per step: `pytest tests/benchmarks/test_video_policy_speed.py -k pooling -s`), and the action chain runs
        # on the pooled features.
        stash: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []  # (features, sigma) per video pass
        read: list[int] = []  # step -> index into stash of the features its action step reads
        denoised_x = x
        for i, t in enumerate(video_sched.timesteps):
            sigma = video_sched.sigmas[i].to(dev).expand(b)
            if real_future is not None:  # features of the real future at this noise level
                self._video_denoise(real_future + sigma.view(-1, 1, 1, 1, 1) * eps, sigma, cond_latent, text)
                stash.append((dict(self._features), sigma))
            elif c.feature_steps is None or i < c.feature_steps:
                if guided:
                    d = self._video_denoise(torch.cat([x, x]), torch.cat([sigma, sigma]), cond2, text2)
                    denoised_x = d[b:] + c.guidance * (d[:b] - d[b:])
                    stash.append((dict(self._features), torch.cat([sigma, sigma])))
                else:
                    denoised_x = self._video_denoise(x, sigma, cond_latent, text)
                    stash.append((dict(self._features), sigma))
                # The denoisers apply EDM's c_in themselves; this call only marks the step as scaled, without
                # which diffusers' step() logs a warning every call. Its return value is not the model input.
                video_sched.scale_model_input(x, t)
                x = video_sched.step(denoised_x, t, x, pred_original_sample=denoised_x).prev_sample
            read.append(len(stash) - 1)
        pooled = self._read_features_batched(stash)
        if features_out is not None:
            features_out.extend(pooled[r] for r in read)
        for i, t in enumerate(action_sched.timesteps):
            sigma = action_sched.sigmas[i].to(dev).expand(b)
            feats = pooled[read[i]]
            if guided:
                da = self._action_denoise(torch.cat([a, a]), torch.cat([sigma, sigma]), feats, text2, state2)
                denoised_a = da[b:] + c.guidance * (da[:b] - da[b:])
            else:
                denoised_a = self._action_denoise(a, sigma, feats, text, state)
            action_sched.scale_model_input(a, t)  # as above: marks the step, the denoiser scales its input
            a = action_sched.step(denoised_a, t, a, pred_original_sample=denoised_a).prev_sample
        video = real_future if real_future is not None else x if c.feature_steps is None else denoised_x
        return a.clamp(-1, 1), video

    def predict_action_chunk(self, batch):
        image = batch["image"][:, -1]  # (B, [cams,] 3, H, W): the current frame
        if image.ndim == 4:
            image = image.unsqueeze(1)
        actions, video = self.sample(image, batch["text"], batch["state"][:, -1:], noise_seeds=batch.get("noise_seed"))
        if self.config.decode_video:
            b, cams = image.shape[:2]
            frames = self.decode_latents(video.flatten(0, 1))  # (N, s, s, 3) at config.image_size
            frames = resize_frames(frames, tuple(image.shape[-2:]))  # to the observation's size, to compare and film
            frames = frames.reshape(b, cams, self.config.num_frames, *image.shape[-2:], 3)
            for k, slot in enumerate(self._chunk_slots if self._chunk_slots is not None else range(b)):
                self.generated[int(slot)] = frames[k].cpu().numpy()
        return actions

    def reset(self, env_ids=None):
        super().reset(env_ids)
        if env_ids is None:
            self.generated = {}
        else:
            for s in env_ids:
                self.generated.pop(int(s), None)

    # ------------------------------------------------------------------------------------ training API
    @classmethod
    def make_dataset(cls, config: VideoPolicyConfig, roots, tasks=None, episodes_per_task=None):
        """The training dataset. A run that trains no action head (``stage_steps`` action and joint 0: video
        pretraining) may use action-free videos only; its action statistics are then a 1-D placeholder (the
        untrained head never acts: export the video model, :meth:`save_video_model`)."""
        from vp_agent.data import MinMax, VideoDataset

        acts = any(int(config.stage_steps.get(s, 0)) > 0 for s in ("action", "joint"))
        ds = VideoDataset(roots, cameras=tuple(config.cameras), horizon=config.horizon,
                          frame_stride=config.frame_stride, tasks=tasks, episodes_per_task=episodes_per_task,
                          require_actions=acts)
        if not ds.stats:
            states = np.concatenate(ds.states)
            ds.stats = {"action": MinMax(-np.ones(1, np.float32), np.ones(1, np.float32)),
                        "state": MinMax(states.min(0), states.max(0))}
            log.info("action-free data: no action head is trained (placeholder action statistics)")
        return ds

    # ------------------------------------------------------------------- pretrained video model
    def save_video_model(self, directory: str | Path, extra: dict | None = None) -> Path:
        """Write the autoencoder and the video U-Net as diffusers folders (``vae/``, ``unet/``: each loads with
        ``from_pretrained``) and ``video_model.json`` (the latent normalisation and what the model generates),
        atomically. ``config.video_model`` points a new run at the folder."""
        import json

        c = self.config
        if not self._svd and not bool(self.latent_fitted):
            raise ValueError("the video model has no latent normalisation yet: train its video stage first")

        def fill(tmp: Path) -> None:
            self.vae.save_pretrained(tmp / "vae")
            self.unet.save_pretrained(tmp / "unet")
            meta = {"format": VIDEO_MODEL_FORMAT, "latent_mean": self.latent_mean.tolist(),
                    "latent_std": self.latent_std.tolist(), **{k: getattr(c, k) for k in VIDEO_MODEL_FIELDS},
                    **(extra or {})}
            (tmp / "video_model.json").write_text(json.dumps(meta, indent=2, default=str))

        return write_dir_atomically(directory, fill)

    def init_pretrained(self) -> None:
        """Start the autoencoder, video U-Net and latent normalisation from ``config.video_model``."""
        import json

        c = self.config
        if not c.video_model:
            return
        src = finish_dir_swap(c.video_model)  # an export killed between its two renames
        try:
            meta = json.loads((src / "video_model.json").read_text())
            vae = AutoencoderKL.from_pretrained(src / "vae")
            unet = UNetSpatioTemporalConditionModel.from_pretrained(src / "unet")
        except (OSError, ValueError) as exc:
            raise ValueError(f"video_model {src}: not a video model folder (python -m vp_agent.export_video "
                             f"writes one): {str(exc).splitlines()[0]}") from exc
        if meta.get("format") != VIDEO_MODEL_FORMAT:
            raise ValueError(f"video_model {src}: format {meta.get('format')!r}, expected {VIDEO_MODEL_FORMAT!r}")
        differ = {k: (meta.get(k), getattr(c, k)) for k in VIDEO_MODEL_FIELDS
                  if json.loads(json.dumps(meta.get(k))) != json.loads(json.dumps(getattr(c, k)))}
        if differ:
            raise ValueError(f"video_model {src} was trained with other settings: " + ", ".join(
                f"{k} {a!r} (this config: {b!r})" for k, (a, b) in differ.items()))
        for name, module, mine in (("vae", vae, self.vae), ("unet", unet, self.unet)):
            try:
                mine.load_state_dict(module.state_dict())
            except RuntimeError as exc:
                raise ValueError(f"video_model {src}/{name} does not fit this config's architecture: "
                                 f"{str(exc).splitlines()[0]} (check vae_channels, unet_channels, unet_heads, "
                                 f"unet_layers, latent_channels)") from exc
        self.latent_mean.copy_(torch.tensor(meta["latent_mean"]))
        self.latent_std.copy_(torch.tensor(meta["latent_std"]))
        self.latent_fitted.fill_(True)
        log.info("video model (autoencoder, U-Net, latent normalisation) from %s", src)

    @classmethod
    def training_stages(cls, config: VideoPolicyConfig) -> list[tuple[str, int, int, float]]:
        """(stage, steps, batch size, lr) in training order; a pretrained autoencoder (``vae_path``, or the
        one of ``video_model``) skips ``vae`` unless ``finetune_vae``."""
        stages = []
        for stage in STAGES:
            steps = int(config.stage_steps.get(stage, 0))
            pretrained_ae = bool(config.vae_path or config.video_model)
            if steps <= 0 or (stage == "vae" and pretrained_ae and not config.finetune_vae):
                continue
            stages.append((stage, steps, int(config.stage_batch.get(stage, 16)), float(config.stage_lrs.get(stage, 1e-4))))
        return stages
