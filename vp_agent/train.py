"""``vp-train``: train a policy on vp_envs datasets (a Hydra app).

    vp-train policy=bc data=[data/metaworld-train] steps=2000
    vp-train policy=diffusion data=[data/metaworld-train] policy.config.horizon=16 out_dir=runs/dp

Reads top to bottom: data -> policy -> (resume) -> loop (batch, loss, step, EMA, log, checkpoint).
Deterministic: the batch indices and the model's randomness at step ``k`` are seeded by ``(seed, k)``, so a
run killed and resumed from its last checkpoint continues exactly as if it had not stopped. Checkpoints
(``<out_dir>/checkpoints/last``: the policy as ``load_policy`` reads it, plus ``training_state.pt``) are
written atomically every ``save_every`` steps; running the same command again resumes from them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf
from tqdm import tqdm

from vp_agent.data import DemoDataset
from vp_agent.policies.base import CheckpointError, finish_dir_swap, load_policy
from vp_agent.policies.interface import sha256_dir
from vp_agent.policies.registry import CONFIGS, POLICIES, PRESETS
from vp_envs.dataset import DatasetError

log = logging.getLogger("vp-train")


@dataclass
class PolicyNode:
    name: str = MISSING
    config: Any = MISSING


@dataclass
class TrainConfig:
    """Training settings (method settings live in the policy's config dataclass).

    Attributes:
        data: dataset directories written by ``vp-data``.
        tasks: train on these tasks only (default: every task in ``data``).
        episodes_per_task: train on the first N demonstrations of each task in each directory (default: all);
            the budget of a sample-efficiency run. Action-free video directories are cut the same way.
        steps: optimiser steps.
        batch_size: samples per step (drawn with replacement).
        seed: seeds batches, initialisation and the model's noise.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        save_every, log_every: checkpoint and log periods in steps.
        out_dir: where checkpoints, logs and the summary go.
        tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).
        threads: torch CPU threads (0 = torch's default).
        lr_schedule: ``constant`` or ``cosine`` (cosine decay to zero over the stage's steps, as Diffusion
            Policy and LeRobot train), after ``warmup_steps`` of linear warm-up.
        warmup_steps: linear learning-rate warm-up steps (0 = none).
        grad_clip: clip the gradient's global norm to this (None = no clipping).
        keep_every: also keep the policy every N steps in ``checkpoints/step_<N>`` (weights only, no
            optimiser state) for learning curves (``python -m eval.curve``); None = only ``last``.
        precision: ``fp32``, ``bf16`` or ``auto``: ``bf16`` runs the forward and backward pass under
            ``torch.autocast(dtype=torch.bfloat16)`` with fp32 weights, optimiser and EMA (mixed precision). On
            a CPU with AVX-512 BF16 it trains BC and Diffusion Policy about 1.5-2x faster per step at a loss
            within a few percent of fp32 (``tests/test_precision.py``, ``docs/performance.md``); on a CPU
            without bf16 units (AVX2 only) torch emulates it, about 80x slower per matmul. ``auto`` (the v2
            recipes) picks ``bf16`` where the device computes it natively (:func:`native_bf16`) and ``fp32``
            elsewhere, and the run's saved config records the choice (the recipe hash is that of the
            precision that ran; a run resumed on another kind of machine goes on in that machine's).
        init_from: a stage checkpoint of another run of a multi-stage policy (``runs/x/checkpoints/vae``) to
            start from: it is copied in as this run's checkpoint of that stage, and training continues with
            the next stage (e.g. reuse one autoencoder for two video models).
    """

    defaults: list = field(default_factory=lambda: [{"policy": "bc"}, "_self_"])
    policy: PolicyNode = MISSING
    data: list[str] = MISSING
    tasks: list[str] | None = None
    episodes_per_task: int | None = None
    steps: int = 2000
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    save_every: int = 500
    log_every: int = 50
    out_dir: str = "runs/train/${policy.name}"
    tensorboard: bool = False
    threads: int = 0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None
    keep_every: int | None = None
    init_from: str | None = None
    precision: str = "fp32"


cs = ConfigStore.instance()
cs.store(name="train", node=TrainConfig)
for _name, _cfg in CONFIGS.items():
    cs.store(group="policy", name=_name, node=PolicyNode(name=_name, config=_cfg()))
for _preset, (_name, _factory) in PRESETS.items():  # e.g. policy=video_policy_gpu: the paper-scale config
    cs.store(group="policy", name=_preset, node=PolicyNode(name=_name, config=_factory()))


LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags of bf16 dot-product units (/proc/cpuinfo)


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (``flags`` on x86, ``Features`` on Arm); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 in hardware (so bf16 autocast speeds training up), and why.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: an x86 flag of bf16 dot-product units (AVX-512 BF16 or AMX)
    or Arm's ``bf16`` feature in ``/proc/cpuinfo``. Without them torch emulates bf16: a 1024x1024 matmul ran at
    0.9 GFLOP/s against fp32's 79 on an AVX2-only CPU (2026-12-06), so a bf16 recipe trained ~40x slower.
    Flags, not a timing probe, so the choice is the same on every run on one machine."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"CUDA device {'supports' if ok else 'does not support'} bf16"
    flags = _cpu_flags()
    found = [f for f in (*BF16_CPU_FLAGS, "bf16") if f in flags]
    if found:
        return True, f"CPU flag {found[0]}"
    return False, f"no bf16 units on this CPU (none of {', '.join(BF16_CPU_FLAGS)} in /proc/cpuinfo)"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``fp32`` (logged with the reason); ``fp32`` and
    ``bf16`` as given (``bf16`` without bf16 units: a warning, it runs emulated); anything else: ValueError."""
    if precision not in (*PRECISIONS, "auto"):
        raise ValueError(f"unknown precision {precision!r}; known: auto, {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return precision
    ok, why = native_bf16(device)
    if precision == "auto":
        log.info("precision=auto -> %s (%s)", "bf16" if ok else "fp32", why)
        return "bf16" if ok else "fp32"
    if not ok:
        log.warning("precision=bf16 on a device without bf16 units (%s): torch emulates it, a step runs many "
                    "times slower than fp32; precision=auto picks fp32 here", why)
    return precision


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all tensors) where this torch supports it on the params' device (CPU from
    torch 2.4, CUDA): an optimiser step over Video Policy's video stage took 5.1 ms instead of 32.5, over
    Diffusion Policy 7.6 instead of 29.6 (``tests/benchmarks/test_training_efficiency.py -k fused``; weights
    differ from the per-tensor loop's by rounding, training stays deterministic). Falls back to torch's
    default loop elsewhere."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # fused not supported for this torch or device
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def autocast(device: torch.device, precision: str):
    """The context a training forward pass runs in: bf16 autocast for ``precision="bf16"``, else nothing."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)} "
                         "(resolve auto with resolve_precision first)")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def lr_at(step: int, steps: int, lr: float, schedule: str = "constant", warmup_steps: int = 0) -> float:
    """Learning rate of optimiser step ``step`` (0-based) of ``steps``: linear warm-up, then constant or
    cosine decay to zero. A function of the step alone, so a resumed run continues on the same curve."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {schedule!r}; known: {', '.join(LR_SCHEDULES)}")
    scale = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "cosine":
        progress = max(0.0, step - warmup_steps) / max(1, steps - warmup_steps)
        scale *= 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return lr * scale


def _seed_step(seed: int, step: int) -> None:
    s = (seed * 1_000_003 + step) % 2**31
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def _batch(dataset: DemoDataset, idx: torch.Tensor, device) -> dict[str, torch.Tensor]:
    items = [dataset[int(i)] for i in idx]
    return {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}


def train(cfg) -> Path:
    """Train as configured by ``cfg`` (a TrainConfig-shaped OmegaConf node); returns the checkpoint dir.

    Single-stage policies (BC, DP) train ``cfg.steps`` steps into ``<out_dir>/checkpoints/last``. Policies
    with ``training_stages`` (Video Policy: vae -> video -> action) train each stage with its own steps,
    batch size and learning rate into ``checkpoints/<stage>``, then save the result as ``checkpoints/last``;
    a rerun skips finished stages and resumes the unfinished one.
    """
    out = Path(cfg.out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if cfg.device == "auto" else cfg.device))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # before anything is saved: checkpoints record (and recipe hashes cover) the precision that runs
    resolved = resolve_precision(cfg.get("precision", "fp32"), device)
    if resolved != cfg.get("precision", "fp32"):
        cfg.precision = resolved
    name = cfg.policy.name
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
    cls = POLICIES[name]
    config = cls.config_class(**OmegaConf.to_container(cfg.policy.config, resolve=True))

    # ---- data
    tasks = list(cfg.tasks) if cfg.tasks else None
    budget = cfg.get("episodes_per_task")
    dataset = cls.make_dataset(config, list(cfg.data), tasks, episodes_per_task=budget)
    log.info("data: %d episodes (%s per task) from %s", len(dataset.frames), budget or "all", list(cfg.data))

    staged = cls.training_stages(config)
    stages = staged if staged is not None else [(None, cfg.steps, cfg.batch_size, config.lr)]
    if staged is not None:
        log.info("%s trains in stages %s (steps/batch/lr from the policy config; cfg.steps is not used)",
                 name, [s[0] for s in stages])
    if cfg.get("init_from"):
        _init_from(Path(cfg.init_from), out, [s[0] for s in stages])
    policy, t_start, final_loss = None, time.time(), {}
    for d in [*(s[0] for s in stages if s[0]), "last"]:  # a kill between the two renames of a checkpoint's
        finish_dir_swap(out / "checkpoints" / d)  # swap: finish it before looking for what to resume
    for k, (stage, steps, batch_size, lr) in enumerate(stages):
        later = [s[0] for s in stages[k + 1:]]
        if any((out / "checkpoints" / s / "training_state.pt").exists() for s in later):
            continue  # a later stage has started: this one is done (resumed or copied in with init_from)
        policy = _train_stage(cfg, name, config, dataset, device, policy, stage, steps, batch_size, lr, out,
                              final_loss)
    ckpt = out / "checkpoints" / "last"
    if stages[0][0] is not None:  # multi-stage: the final model is the last stage's
        _checkpoint(policy, None, None, sum(s[1] for s in stages), ckpt, dataset, cfg, stage=stages[-1][0])
    summary = {"policy": name, "stages": [{"stage": s, "steps": n, "batch_size": b, "lr": lr}
                                          for s, n, b, lr in stages],
               "final_loss": final_loss, "seconds_this_session": round(time.time() - t_start, 1),
               "samples": len(dataset),
               "checkpoint": str(ckpt), "device": str(device)}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return ckpt


def _rebuild(policy, name, cfg, dataset, device):
    """A new stage whose config differs from the previous stage's (e.g. other ``feature_blocks`` for the
    action head, an ablation on one video model): a policy with the new config that keeps every weight whose
    name and shape still fit; the rest start fresh."""
    from vp_agent import make_policy

    new = make_policy(name, OmegaConf.to_container(cfg.policy.config, resolve=True), policy.stats,
                      policy.state_dim, policy.action_dim).to(device)
    own, old = new.state_dict(), policy.state_dict()
    keep = {k: v for k, v in old.items() if k in own and own[k].shape == v.shape}
    new.load_state_dict(keep, strict=False)
    fresh = sorted({k.split(".")[0] for k in own if k not in keep})
    log.info("config changed between stages: kept %d of %d tensors; fresh: %s", len(keep), len(own), fresh or "none")
    return new


def _init_from(src: Path, out: Path, stages: list) -> None:
    import shutil

    finish_dir_swap(src)
    try:
        meta = json.loads((src / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"init_from {src}: not a readable checkpoint ({exc})") from exc
    stage = meta.get("stage")
    if stage not in stages or not (src / "training_state.pt").exists():
        raise CheckpointError(f"init_from {src}: needs a stage checkpoint (one of {', '.join(map(str, stages))}) "
                              f"with training_state.pt; it has stage {stage!r}")
    dst = out / "checkpoints" / stage
    if not dst.exists():
        shutil.copytree(src, dst.with_name(dst.name + ".tmp"), dirs_exist_ok=True)
        os.replace(dst.with_name(dst.name + ".tmp"), dst)
        log.info("init_from: %s copied in as stage %s", src, stage)


def _train_stage(cfg, name, config, dataset, device, policy, stage, steps, batch_size, lr, out, final_loss=None):
    """Train one stage (``stage`` None for single-stage policies); resumes from its checkpoint."""
    ckpt = out / "checkpoints" / (stage or "last")
    _seed_step(cfg.seed, -1)
    step, state = 0, None
    if (ckpt / "training_state.pt").exists():
        policy = load_policy(ckpt, device=str(device))
        try:
            state = torch.load(ckpt / "training_state.pt", map_location=device, weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{ckpt}/training_state.pt is unreadable: {exc}") from exc
        step = int(state["step"])
        if step < steps:  # continue training from the raw weights (the saved policy holds the EMA ones); a
            policy.load_state_dict(state["raw_weights"])  # finished stage hands on what it saved
        log.info("resuming %s%s from step %d (%s)", name, f" stage {stage}" if stage else "", step, ckpt)
    elif policy is None:
        from vp_agent import make_policy

        policy = make_policy(name, OmegaConf.to_container(cfg.policy.config, resolve=True), dataset.stats,
                             dataset.state_dim, dataset.action_dim).to(device)
        policy.init_pretrained()  # e.g. Video Policy's video_model: a pretrained autoencoder and video U-Net
    if step >= steps:
        log.info("stage %s already finished (%d steps)", stage, step)
        return policy
    if state is None and dataclasses.asdict(policy.config) != dataclasses.asdict(config):
        policy = _rebuild(policy, name, cfg, dataset, device)
    if stage is not None:
        policy.set_stage(stage)
        if stage != "vae" and getattr(dataset, "latents", None) is None:
            policy.prepare_dataset(dataset, cache_dir=out / "cache")
    dataset.set_text_embeddings(policy.text_encoder.encode(dataset.instructions))
    policy.train()
    params = policy.trainable_parameters()
    optimizer = adamw(params, lr, config.weight_decay)
    ema = None
    if getattr(config, "ema_power", None):  # over the weights this stage trains (all of them, single-stage)
        from diffusers.training_utils import EMAModel

        ema = EMAModel(params, power=config.ema_power, use_ema_warmup=True)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])

    writer = None
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("tensorboard=true needs the tensorboard package: pip install tensorboard") from exc
        writer = SummaryWriter(str(out / "tensorboard"))

    # ---- loop
    precision = cfg.get("precision", "fp32")  # resolved at the start (auto -> fp32 or bf16)
    pool = torch.as_tensor(dataset.indices(stage)) if hasattr(dataset, "indices") else None
    losses, t0, log_path = [], time.time(), out / "train_log.jsonl"
    desc = f"vp-train {name}" + (f" [{stage}]" if stage else "")
    bar = tqdm(total=steps, initial=step, desc=desc, unit="step")
    while step < steps:
        _seed_step(cfg.seed, step)
        idx = (torch.randint(len(dataset), (batch_size,)) if pool is None
               else pool[torch.randint(len(pool), (batch_size,))])
        with autocast(device, precision):
            loss = policy(_batch(dataset, idx, device))["loss"].float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(params, float(cfg.grad_clip))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, cfg.get("lr_schedule", "constant"), int(cfg.get("warmup_steps", 0)))
        optimizer.step()
        if ema is not None:
            ema.step(params)
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % cfg.log_every == 0 or step == steps:
            mean = float(np.mean(losses[-cfg.log_every:]))
            bar.set_postfix(loss=f"{mean:.4f}")
            record = {"step": step, "loss": mean, "seconds": round(time.time() - t0, 2)}
            if stage:
                record = {"stage": stage, **record}
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if writer:
                writer.add_scalar(f"train/{stage + '_' if stage else ''}loss", mean, step)
        if step % cfg.save_every == 0 or step == steps:
            _checkpoint(policy, optimizer, ema, step, ckpt, dataset, cfg, stage=stage)
        if cfg.get("keep_every") and step % int(cfg.keep_every) == 0 and stage in (None, "action"):
            _checkpoint(policy, None, ema, step, out / "checkpoints" / f"step_{step:06d}", dataset, cfg,
                        training_state=False)
    bar.close()
    if ema is not None:  # the stage hands on the weights it saved: the averaged ones
        ema.copy_to(params)
    if final_loss is not None and losses:  # mean of the last logging window trained this session
        final_loss[stage or "last"] = float(np.mean(losses[-cfg.log_every:]))
    return policy


_VIDEO_MODEL_SHA: dict[str, str] = {}


def pretrained_record(cfg) -> dict[str, str] | None:
    """The pretrained video model a run starts from (``policy.config.video_model``), by path and by the hash
    of its files (hashed once per process). The recipe names the folder; this names its weights, so the
    leaderboard never pools runs of one recipe that started from different pretrainings."""
    path = OmegaConf.select(cfg, "policy.config.video_model", default=None)
    if not path or not Path(path).is_dir():
        return None
    if path not in _VIDEO_MODEL_SHA:
        _VIDEO_MODEL_SHA[path] = sha256_dir(Path(path))
    return {"path": str(path), "sha256": _VIDEO_MODEL_SHA[path]}


def _checkpoint(policy, optimizer, ema, step, ckpt, dataset, cfg, stage=None, training_state=True) -> None:
    """Save the policy as it acts at ``step`` (EMA weights where it has them) to ``ckpt``; with
    ``training_state`` also what a resume needs (raw weights, optimiser, EMA). Without it: a weights-only
    snapshot for learning curves (``keep_every``)."""
    raw = {k: v.detach().clone() for k, v in policy.state_dict().items()} if training_state else None
    params = list(policy.trainable_parameters()) if ema is not None else []
    if ema is not None:  # the policy on disk acts with the EMA weights, as DP evaluates
        ema.store(params)
        ema.copy_to(params)
    extra = {"trained_steps": step, "datasets": dataset.manifests, "instructions": dataset.instructions,
             "train_config": OmegaConf.to_container(cfg, resolve=True)}
    if (video_model := pretrained_record(cfg)) is not None:
        extra["video_model"] = video_model
    if stage:
        extra["stage"] = stage
    files = {}
    if training_state:
        state = {"step": step, "optimizer": optimizer.state_dict() if optimizer is not None else None,
                 "raw_weights": raw, "ema": ema.state_dict() if ema is not None else None}
        files["training_state.pt"] = lambda path: torch.save(state, path)
    policy.save(ckpt, extra=extra, extra_files=files)
    if ema is not None:
        ema.restore(params)


@hydra.main(version_base=None, config_path="conf", config_name="train")
def main(cfg) -> None:
    try:
        ckpt = train(cfg)
    except (DatasetError, CheckpointError, ValueError) as exc:  # bad input: one line, exit 2 (as vp-eval)
        print(f"vp-train: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"checkpoint: {ckpt}")


if __name__ == "__main__":
    main()
