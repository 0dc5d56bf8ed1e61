"""Helpers shared by the tests/test_eval_*.py files: tiny protocols written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import yaml

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
