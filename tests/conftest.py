import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread: the tiny test models gain nothing from two, and two threads spinning against the
# renderer and worker processes on a 2-core machine slow everything down.
torch.set_num_threads(1)

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
