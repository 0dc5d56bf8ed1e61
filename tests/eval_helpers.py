"""Helpers shared by the tests/test_eval_*.py files: tiny protocols written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from vp_agent.policies.interface import Policy

# The smallest protocol that still exercises a shift split and the mixing of cells: numbers chosen for
# test speed only (2 episodes x 15 steps x 32x32 pixels per cell).
TINY = dict(name="tiny", version=1, description="A test-sized protocol.", suite="metaworld",
            tasks=["reach-v3"], splits=["test", "camera"], episodes=2, max_steps=15,
            cameras=["corner2"], image_size=32)


def write_protocol(folder: Path, name: str = "tiny", **overrides) -> Path:
    """Write ``TINY`` with ``overrides`` to ``folder/<name>.yaml`` and return the path."""
    body = {**TINY, "name": name, **overrides}
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def without_timings(frame):
    """Rows minus the columns that are timings (the only ones allowed to differ between reruns)."""
    from eval.runner import TIMING_COLUMNS

    return frame.drop(columns=TIMING_COLUMNS).sort_values(["task", "split", "level", "episode"]).reset_index(drop=True)


class ReplanEvery(Policy):
    """Reads its frame every ``k``-th call and holds an action derived from it (mean colour, hand height) for
    ``k`` steps, like a chunked policy with one observation; it declares which frames it reads through
    ``needs_frame`` and records them in ``read`` as (episode, call, frame bytes). Negligible compute, so a
    runner's timing with it is the environment's."""

    checkpoint_hash = "0" * 64

    def __init__(self, k: int, camera: str = "corner2"):
        self.k, self.camera, self.spec = int(k), camera, f"replan{k}"
        self.calls, self.held, self.read = {}, {}, []

    def reset(self, env_ids=None):
        for i in (env_ids if env_ids is not None else list(self.calls)):
            self.calls.pop(int(i), None), self.held.pop(int(i), None)

    def needs_frame(self, slot):
        return self.calls.get(int(slot), 0) % self.k == 0

    def act(self, obs, infos):
        out = []
        for row, info in enumerate(infos):
            slot = int(info["slot"])
            n = self.calls.get(slot, 0)
            if n % self.k == 0:
                frame = obs["pixels"][self.camera][row]
                self.read.append((int(info["episode"]), n, frame.tobytes()))
                c = frame.reshape(-1, 3).mean(0) / 255.0
                self.held[slot] = np.clip(np.array([c[0] - c[2], c[1] - c[0], obs["state"][row][2], 0.0]) * 4,
                                          -1, 1).astype(np.float32)
            self.calls[slot] = n + 1
            out.append(self.held[slot])
        return np.stack(out)
