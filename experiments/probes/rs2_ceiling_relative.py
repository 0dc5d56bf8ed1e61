"""Probe (not a recipe): does robosuite-lite-v2's privileged-state ceiling stack more when handed relative positions?

Appends the hand-to-cube-A, hand-to-cube-B and cube-A-to-cube-B vectors (robosuite's own low-dim Stack
observation has them; ours holds absolute positions only) to ``privileged_state`` in the training data and at
inference, then runs ``vp-train`` or ``vp-eval`` (arguments as experiments/probes/rs2_ceiling_notime.py). On
Lift, whose state is zero-padded after the cube, the B vectors are padding arithmetic, the same in training and
evaluation. Outcome: results/probes/robosuite-lite-v2-stack-ceiling.json.
"""

import numpy as np

from _state_probe import run


def with_relative(x):
    eef, a, b = x[..., 1:4], x[..., 10:13], x[..., 17:20]  # robosuite_env.privileged_layout("Stack")
    return np.concatenate([x, eef - a, eef - b, a - b], axis=-1).astype(np.float32)


if __name__ == "__main__":
    run(with_relative)
