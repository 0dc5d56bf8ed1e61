"""Learning curves: success against training step, from the snapshots a training run kept.

``vp-train ... keep_every=N`` keeps the policy every N steps in ``<out_dir>/checkpoints/step_<N>``. This
command runs each snapshot (and ``last``) through the first ``--episodes`` ``test`` episodes of every
training task of a protocol (the same episodes for every snapshot, through the same runner as ``vp-eval``),
and writes ``<out>.csv`` (one row per snapshot and task) and ``<out>.png`` (success against step, pooled and
per task). A recipe is trained long enough when the curve has flattened.

    python -m eval.curve runs/train/bc-lite-v2 --protocol metaworld-lite-v2 --episodes 5 \\
        --out results/curves/bc-lite-v2

Rollouts go to ``<train_dir>/curves/<protocol>-v<version>-<split>/step_<N>/`` (resumable; not ranked: they are
not under ``results/``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

import pandas as pd

log = logging.getLogger("vp-curve")


def snapshots(train_dir: Path) -> list[tuple[int, Path]]:
    """(step, checkpoint dir) of every kept snapshot of a training run, in step order."""
    import json

    found = []
    for path in sorted((train_dir / "checkpoints").glob("step_*")):
        m = re.fullmatch(r"step_(\d+)", path.name)
        if m and (path / "config.json").is_file():
            found.append((int(m.group(1)), path))
    last = train_dir / "checkpoints" / "last"
    if (last / "config.json").is_file():
        meta = json.loads((last / "config.json").read_text())
        step = int(meta.get("trained_steps", 0))
        # staged training (Video Policy) keeps snapshots by step *within* its action stage, but the final
        # `last` counts the steps of all stages: it is the end of that stage, so place it there
        stage_steps = (meta.get("config") or {}).get("stage_steps") or {}
        if meta.get("stage") in stage_steps and step > int(stage_steps[meta["stage"]]):
            step = int(stage_steps[meta["stage"]])
        if step not in {s for s, _ in found}:
            found.append((step, last))
    return sorted(found)


def curve(train_dir: Path, protocol: str, episodes: int = 5, split: str = "test", num_envs: int = 2,
          rollouts: Path | None = None) -> pd.DataFrame:
    """Success per (snapshot step, task) on the first ``episodes`` episodes of ``split``."""
    from eval.policies import load_policy_spec
    from eval.protocol import load_protocol
    from eval.runner import Runner, check_observation_fit

    proto = load_protocol(protocol)
    eps = [ep for ep in proto.episodes() if ep.split == split and ep.index < episodes]
    if not eps:
        raise ValueError(f"protocol {proto.name!r} has no {split!r} episodes")
    found = snapshots(train_dir)
    if not found:
        raise ValueError(f"{train_dir} has no checkpoints/step_* or checkpoints/last; train with keep_every=N")
    rollouts = rollouts or train_dir / "curves" / f"{proto.name}-v{proto.version}-{split}"
    out = []
    for step, path in found:
        policy = load_policy_spec(str(path))
        check_observation_fit(proto, policy)
        rows = Runner(proto, policy, rollouts / f"step_{step:06d}", num_envs=num_envs, vector="sync",
                      videos_per_cell=0, episodes=eps).run()  # a progress bar per snapshot
        ok = rows["success"].astype(bool) & (rows["error"].fillna("") == "")
        for task, g in rows.assign(ok=ok).groupby("task", sort=False):
            out.append({"step": step, "task": task, "episodes": len(g), "successes": int(g["ok"].sum()),
                        "success_rate": float(g["ok"].mean())})
        log.info("step %d: %.0f%% of %d episodes", step, 100 * ok.mean(), len(rows))
    return pd.DataFrame(out)


def plot(table: pd.DataFrame, path: Path, title: str) -> None:
    """Pooled success (thick) and per-task success (thin) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for task, g in table.groupby("task", sort=True):
        ax.plot(g["step"], 100 * g["success_rate"], lw=1, alpha=0.6, label=task)
    pooled = table.groupby("step").apply(lambda g: g["successes"].sum() / g["episodes"].sum(), include_groups=False)
    ax.plot(pooled.index, 100 * pooled.values, color="black", lw=3, label="all tasks")
    ax.set_xlabel("training step")
    ax.set_ylabel("test success (%)")
    ax.set_ylim(-3, 103)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m eval.curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("train_dir", type=Path, help="a vp-train out_dir trained with keep_every=N")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--episodes", type=int, default=5, help="test episodes per task per snapshot")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-envs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="output stem: writes <out>.csv and <out>.png")
    args = parser.parse_args(argv)
    try:
        table = curve(args.train_dir, args.protocol, args.episodes, args.split, args.num_envs)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    csv = args.out.with_suffix(".csv")
    tmp = csv.with_name(f".{csv.name}.tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, csv)
    plot(table, args.out.with_suffix(".png"),
         f"{args.train_dir.name} on {args.protocol} ({args.split}, {args.episodes} episodes per task)")
    pooled = table.groupby("step")[["successes", "episodes"]].sum()
    for step, r in pooled.iterrows():
        print(f"step {step:>7d}: {100 * r.successes / r.episodes:5.1f}% ({r.successes}/{r.episodes})")
    print(f"wrote {csv} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
