import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vp_envs  # noqa: E402

SMALL = dict(width=32, height=32)


@pytest.fixture
def make_env():
    """Make vp_envs envs that are closed at the end of the test."""
    made = []

    def _make(env_id, **kwargs):
        env = vp_envs.make(env_id, **{**SMALL, **kwargs})
        made.append(env)
        return env

    yield _make
    for env in made:
        env.close()


def frame(obs) -> np.ndarray:
    return next(iter(obs["pixels"].values()))
