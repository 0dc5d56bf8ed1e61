"""Where does a policy fail? Trace its episodes step by step, reading the simulator beside its actions.

A success rate says how often; a trace says where. For each of the first N episodes of one (task, split) of a
protocol, this plays the episode as ``vp-eval ... num_envs=1`` does (the same slot env, seeds, padded
privileged state and torch thread count; :func:`trace` says why a run with more slots can differ) and writes one
row per step: the action the policy sent, and every named field of the privileged state after the step (the
suite's ``privileged_layout``: robosuite ``cubeA_pos_z``, ``gripper_qpos_0``, ...; Meta-World ``hand_pos_x``,
``object_pos_z``, ``goal_pos_y``, ...). Printed per episode: success, steps, and how far each tracked object rose and
where it ended, which is usually enough to name the failure (a cube dropped on the way, a door never reached).

    python -m eval.trace runs/train/rs2-bc-state/checkpoints/last --protocol robosuite-lite-v2 --task Stack \\
        --episodes 10 --out results/traces/rs2-bc-state-Stack.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

def state_fields(suite: str, task: str) -> dict[str, slice]:
    """Named slices of ``info["privileged_state"]`` for ``task`` (the suite's ``privileged_layout``)."""
    if suite == "robosuite":
        from vp_envs.robosuite_env import privileged_layout
    else:
        from vp_envs.metaworld_env import privileged_layout
    return privileged_layout(task)


def eval_torch_threads() -> int:
    """``vp-eval``'s torch thread count (``torch_threads`` in eval/conf/eval.yaml)."""
    from omegaconf import OmegaConf

    return int(OmegaConf.load(Path(__file__).parent / "conf" / "eval.yaml").torch_threads)


def trace(policy_spec: str, protocol: str, task: str, split: str = "test", episodes: int = 10,
          torch_threads: int | None = None) -> pd.DataFrame:
    """One row per (episode, step): ``action_i``, the privileged-state fields after the step, ``success``.

    Episodes are played one at a time, each policy call a batch of one, on ``torch_threads`` inference threads
    (default: ``vp-eval``'s, one): the rows of ``vp-eval ... num_envs=1``, step for step. A ``vp-eval`` run
    with more slots can differ: a network's last bits depend on the batch it runs in (convolution kernels are
    chosen by batch size), and closed loop such bits can change an episode. Measured on robosuite-lite-v2's
    image BC: Stack's 20 ``test`` episodes gave 3 successes with ``num_envs=2`` and 1 with ``num_envs=1`` (the
    trace's 1, the same episode at the same step); the privileged-state ceilings' rows matched exactly."""
    import torch

    if torch_threads is not None and torch_threads < 1:
        raise ValueError(f"torch_threads must be 1 or more; got {torch_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(torch_threads if torch_threads is not None else eval_torch_threads())
    try:
        return _trace(policy_spec, protocol, task, split, episodes)
    finally:
        torch.set_num_threads(previous)


def cell_episodes(proto, task: str, split: str) -> list:
    """The protocol's episodes of (task, split); a ValueError listing its cells when there are none."""
    eps = [ep for ep in proto.episodes() if ep.task == task and ep.split == split]
    if not eps:
        cells = sorted({(ep.task, ep.split) for ep in proto.episodes()})
        raise ValueError(f"protocol {proto.name!r} has no episodes of ({task!r}, {split!r}); "
                         f"its cells: {', '.join(f'{t}/{s}' for t, s in cells)}")
    return eps


def write_csv(df: pd.DataFrame, path: Path, float_format: str) -> None:
    """``df`` to ``path`` atomically (readers see the old file or the new one), saying where."""
    from eval.runner import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda tmp: df.to_csv(tmp, index=False, float_format=float_format))
    print(f"wrote {path}")


def _trace(policy_spec: str, protocol: str, task: str, split: str, episodes: int) -> pd.DataFrame:
    from eval.policies import load_policy_spec
    from eval.protocol import load_protocol
    from eval.slot_env import SlotEnv, format_error

    proto = load_protocol(protocol)
    eps = [ep for ep in cell_episodes(proto, task, split) if ep.index < episodes]
    policy = load_policy_spec(policy_spec)
    fields = state_fields(proto.suite, task)
    env = SlotEnv(proto.suite, proto.env_kwargs())
    rows = []
    try:
        for ep in eps:
            env.next_episode = (ep.task, ep.split, ep.level, ep.index)
            obs, info = env.reset()
            policy.reset()
            while not info["done"]:
                batch = {k: ({c: v[None] for c, v in o.items()} if isinstance(o, dict) else o[None])
                         for k, o in obs.items()}
                try:
                    action = np.asarray(policy.act(batch, [{**info, "slot": 0}])[0], np.float64)
                except Exception as exc:  # recorded as the episode's last row, as vp-eval records it
                    rows.append({"episode": ep.index, "step": info["steps"], "success": False,
                                 "error": format_error(exc)})
                    break
                obs, _, _, _, info = env.step(action)
                row = {"episode": ep.index, "step": info["steps"], "success": info["success"],
                       "error": info["error"], **{f"action_{i}": a for i, a in enumerate(action)}}
                for name, s in fields.items():
                    value = info["privileged_state"][s]
                    name = f"state_{name}" if name in ("episode", "step", "success", "error") else name
                    row.update({name: value[0]} if value.size == 1 else
                               {f"{name}_{'xyz'[i] if value.size == 3 else i}": v for i, v in enumerate(value)})
                rows.append(row)
    finally:
        env.close()
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per episode: success, steps, and for every tracked position its rise (max z - first z) and final xyz;
    where a task tracks several (robosuite Stack's two cubes, Meta-World's object and goal), the horizontal
    distance of the first to each other one, closest over the episode and at its end (``cubeA_to_cubeB_xy_cm``:
    was cube A ever carried over B?), and their height difference at the end."""
    out = []
    for ep, g in df.groupby("episode"):
        row = {"episode": ep, "success": bool(g.success.any()), "steps": int(g.step.max())}
        names = [c[:-2] for c in g.columns if c.endswith("_pos_z") and not c.startswith(("eef", "hand"))]
        for name in names:
            row[f"{name}_rise_cm"] = round(100 * (g[f"{name}_z"].max() - g[f"{name}_z"].iloc[0]), 1)
            row[f"{name}_final"] = tuple(round(float(g[f"{name}_{a}"].iloc[-1]), 3) for a in "xyz")
        for other in names[1:]:
            a, b = names[0], other
            xy = 100 * np.hypot(g[f"{a}_x"] - g[f"{b}_x"], g[f"{a}_y"] - g[f"{b}_y"])
            pair = f"{a.removesuffix('_pos')}_to_{b.removesuffix('_pos')}"
            row[f"{pair}_xy_cm_min"] = round(float(xy.min()), 1)
            row[f"{pair}_xy_cm_final"] = round(float(xy.iloc[-1]), 1)
            row[f"{pair}_dz_cm_final"] = round(float(100 * (g[f"{a}_z"].iloc[-1] - g[f"{b}_z"].iloc[-1])), 1)
        out.append(row)
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", help="a vp-eval policy spec: checkpoint dir, expert, random")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--episodes", type=int, default=10, help="the first N episodes of the cell")
    parser.add_argument("--out", type=Path, help="CSV of every step (default: print the summary only)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="inference threads (default: vp-eval's torch_threads, 1: the bits of its rows)")
    args = parser.parse_args(argv)
    from eval.policies import PolicySpecError
    from eval.protocol import ProtocolError

    try:
        df = trace(args.policy, args.protocol, args.task, args.split, args.episodes, args.torch_threads)
    except (ValueError, ProtocolError, PolicySpecError) as exc:
        print(f"eval.trace: error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_csv(df, args.out, "%.5g")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(df).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
