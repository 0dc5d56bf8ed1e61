"""``vp-eval``: run one policy through one protocol (a Hydra app; settings in ``eval/conf/eval.yaml``).

    vp-eval policy=expert protocol=metaworld-lite
    vp-eval policy=random protocol=metaworld-lite run_dir=results/runs/metaworld-lite/random num_envs=2
    vp-eval policy=sb3:runs/ppo/model.zip protocol=path/to/my-protocol.yaml
    vp-eval policy=runs/train/vp/checkpoints/last protocol=metaworld-lite-v2 "inference={feature_steps: 3}"

Every setting is checked (protocol file, policy spec and checkpoint, backend) before the first rollout, and
a bad one exits with status 2 and one line naming the bad value and the valid ones. Run the same command
again to resume: finished episodes in ``run_dir/episodes.parquet`` are skipped.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from eval.policies import PolicySpecError  # noqa: E402
from eval.protocol import ProtocolError  # noqa: E402
from eval.runner import RunError, run  # noqa: E402


@hydra.main(config_path="conf", config_name="eval", version_base=None)
def _main(cfg: DictConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if OmegaConf.is_missing(cfg, "policy"):
        _fail("policy is required, e.g. vp-eval policy=expert (valid: expert, random, sb3:<model.zip>, "
              "py:<module>:<factory>, <checkpoint dir>)")
    if int(cfg.get("torch_threads", 0)) > 0:
        import torch

        torch.set_num_threads(int(cfg.torch_threads))
    try:
        rows = run(protocol=str(cfg.protocol), policy=str(cfg.policy), run_dir=cfg.run_dir,
                   num_envs=int(cfg.num_envs), backend=str(cfg.backend), vector=str(cfg.vector),
                   videos_per_cell=int(cfg.videos_per_cell), video_fps=int(cfg.video_fps),
                   retry_errors=bool(cfg.retry_errors), progress=bool(cfg.progress),
                   splits=list(cfg.splits) if cfg.get("splits") else None,
                   image_ablation=cfg.get("image_ablation"),
                   render_on_demand=bool(cfg.get("render_on_demand", True)),
                   inference=OmegaConf.to_container(cfg.inference) if cfg.get("inference") else None)
    except (ProtocolError, PolicySpecError, RunError) as exc:
        _fail(str(exc))
    n, ok = len(rows), int(rows["success"].sum()) if len(rows) else 0
    errors = int((rows["error"] != "").sum()) if len(rows) else 0
    print(f"vp-eval: {n} episodes, success {ok}/{n}" + (f", {errors} with errors" if errors else ""))


def _fail(message: str) -> None:
    print(f"vp-eval: error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    """Console-script entry point."""
    _main()


if __name__ == "__main__":
    main()
