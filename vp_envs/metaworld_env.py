"""Meta-World v3 tasks behind the vp_envs contract."""

from __future__ import annotations

import copy
import functools
from importlib import resources

import mujoco
import numpy as np
import yaml

from vp_envs import NO_LIMIT
from vp_envs.base import SuiteEnv
from vp_envs.rendering import RenderOptions, SceneRenderer

SUITE = "metaworld"
DEFAULT_CAMERAS = ("corner2",)
# Where distractors may stand: the table area in front of the robot (metres, world frame).
TABLE_REGION = ((-0.45, 0.45), (0.35, 0.95))
# Bodies of the Sawyer robot's kinematic tree start here; the mocap body drives the hand.
ROBOT_ROOTS = ("base", "mocap")
STATE_LIMIT = 10.0  # metres / unit quaternion entries never get near this
# The ``position`` split (split version 2) widens a reset coordinate only when Meta-World really randomises
# it: a training range of at least this much (metres) ...
RANDOMISED_M = 0.015
# ... that moves something in the scene (an object or the goal; Meta-World draws some coordinates it then
# overwrites, e.g. push-v3's goal height, disassemble-v3's goal), and that the task's success depends on.
# reach-v3 draws the puck's position but only asks for the hand at the goal.
IGNORED_BY_TASK = {"reach-v3": (0, 1, 2), "reach-wall-v3": (0, 1, 2)}


class _FixedDraw(Exception):
    """A reset asked for a second random draw (Meta-World redraws overlapping object and goal)."""


@functools.cache
def position_coordinates(task: str) -> tuple[int, ...]:
    """The reset coordinates (indices into Meta-World's ``_random_reset_space``) the ``position`` split
    widens and checks: randomised over at least ``RANDOMISED_M``, moving an object or the goal when changed,
    not ignored by the task. Found by resetting a fresh env with one coordinate changed at a time."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    sim = ALL_V3_ENVIRONMENTS[task]()
    sim._partially_observable = False
    sim._set_task_called = True
    low, high = sim._random_reset_space.low.copy(), sim._random_reset_space.high.copy()

    def scene(vec: np.ndarray) -> np.ndarray | None:
        calls = [0]

        def draw():
            calls[0] += 1
            if calls[0] > 3:
                raise _FixedDraw
            return vec

        sim._get_state_rand_vec = draw
        try:
            sim.reset()
        except _FixedDraw:
            return None
        finally:
            del sim._get_state_rand_vec
        obs = sim._get_obs()
        return np.concatenate([obs[4:7], obs[11:14], np.asarray(sim._target_pos, dtype=np.float64)])

    rng = np.random.default_rng(0)
    for _ in range(50):  # a start whose object and goal do not overlap (Meta-World would redraw)
        base_vec = rng.uniform(low, high)
        base = scene(base_vec)
        if base is not None:
            break
    else:
        raise RuntimeError(f"{task}: no reset draw found to probe its randomised coordinates")
    used = []
    for i in np.flatnonzero(high - low >= RANDOMISED_M):
        if i in IGNORED_BY_TASK.get(task, ()):
            continue
        for delta in (0.01, -0.01):  # one of the two keeps object and goal apart
            vec = base_vec.copy()
            vec[i] += delta
            moved = scene(vec)
            if moved is not None:
                if np.abs(moved - base).max() > 1e-4:
                    used.append(int(i))
                break
    sim.close()
    return tuple(used)


# Meta-World's 39-D observation, which is ``info["privileged_state"]``: this frame's hand, gripper and two
# objects (a task with one object pads the second with zeros), the same 18 values of the previous frame, the goal.
_PRIVILEGED_LAYOUT = {"hand_pos": slice(0, 3), "gripper": slice(3, 4), "object_pos": slice(4, 7),
                      "object_quat": slice(7, 11), "object2_pos": slice(11, 14), "object2_quat": slice(14, 18),
                      "goal_pos": slice(36, 39)}


def privileged_layout(task: str) -> dict[str, slice]:
    """Field name -> slice of ``info["privileged_state"]`` (the same for every task; the previous frame's
    copy, 18:36, is not named)."""
    return dict(_PRIVILEGED_LAYOUT)


@functools.cache
def task_instructions() -> dict[str, str]:
    """Task name -> instruction sentence, from ``vp_envs/tasks/metaworld.yaml``."""
    raw = yaml.safe_load((resources.files("vp_envs.tasks") / "metaworld.yaml").read_text())
    return dict(raw["tasks"])


def list_tasks() -> list[str]:
    return list(task_instructions())


def _geom_groups(model) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sort visible geoms by role for the colour factors."""
    robot_roots = {model.body(n).id for n in ROBOT_ROOTS}
    robot_bodies = {b for b in range(model.nbody)
                    if b in robot_roots or _ancestor_in(model, b, robot_roots)}
    groups: dict[str, list[int]] = {k: [] for k in ("floor", "table", "background", "robot", "object")}
    for g in range(model.ngeom):
        body = model.geom_bodyid[g]
        name = model.body(body).name
        if body == 0:
            groups["floor"].append(g)
        elif name in ("tablelink", "RetainingWall"):  # the retaining wall is the table's rim
            groups["table"].append(g)
        elif body in robot_bodies:
            groups["robot"].append(g)
        else:
            groups["object"].append(g)
    arrays = {k: np.asarray(v, dtype=int) for k, v in groups.items()}
    return arrays, np.unique(model.geom_bodyid[arrays["object"]])


def _ancestor_in(model, body: int, roots: set[int]) -> bool:
    while body != 0:
        body = model.body_parentid[body]
        if body in roots:
            return True
    return False


class MetaWorldEnv(SuiteEnv):
    """A Meta-World v3 task with pixels, a split and a seeded episode layout.

    ## Action space
    ``Box(-1, 1, (4,), float32)``: end-effector position delta (x, y, z; 1 = 1 cm per step) and gripper
    effort (-1 open, +1 close). Meta-World's own convention, unchanged.

    ## Observation space
    ``Dict(pixels=Dict(<camera>: Box(0, 255, (H, W, 3), uint8)), state=Box(float32))``. Images are upright.
    ``state`` is ``proprio`` (4-D: hand position, gripper opening) by default or ``full`` (Meta-World's 39-D
    observation with the goal). With ``cameras=()`` there is no ``pixels`` key (state-only, fast).

    ## Reward and episode end
    Meta-World's v2 dense reward. ``terminated`` is True at success when ``terminate_on_success``;
    ``truncated`` after ``max_episode_steps`` (500 by default; ``None``: never, as ``gymnasium.make`` builds it,
    leaving the limit to its ``TimeLimit`` wrapper, so ``gym.make(id, max_episode_steps=700)`` runs 700 steps).

    ## Info
    ``success`` (bool), ``instruction``, ``task``, ``split``, ``level``, ``seed`` and ``privileged_state``
    (the 39-D full observation, for scripted experts and analysis, never for policies).

    ## Starting state
    ``reset(seed=s)`` draws object and goal positions from Meta-World's ranges (or the ``position`` split's
    widened ones) with ``s``; ``reset(options={"episode": i})`` uses the split's seed for episode ``i``
    (:func:`vp_envs.episode_seed`). Perceptual factors of the split are drawn from the same seed.

    ## Arguments
    task, split, level (graded shift size, 1-based; default from the split file), cameras, width, height,
    state (``proprio`` | ``full``), max_episode_steps, terminate_on_success, render_options
    (:class:`RenderOptions`), render_mode (``rgb_array`` returns the first camera's frame).

    ## Version history
    v3 ids follow Meta-World v3; the split file carries its own version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}
    suite = SUITE
    action_dim, proprio_dim = 4, 4
    action_doc = "dx, dy, dz, gripper"
    shared_state_dims = {"full": 39}
    state_limit = STATE_LIMIT
    task_instructions = staticmethod(task_instructions)

    @classmethod
    def privileged_dim(cls) -> int:
        return 39  # Meta-World's full observation, goal included

    def __init__(self, task: str, split: str = "train", level: int | None = None,
                 cameras: tuple[str, ...] | list[str] = DEFAULT_CAMERAS, width: int = 64, height: int = 64,
                 state: str = "proprio", max_episode_steps: int | None = 500, terminate_on_success: bool = False,
                 render_options: RenderOptions | dict | None = None, render_mode: str | None = None):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        super().__init__(task, split, level, cameras, width, height, state, max_episode_steps,
                         terminate_on_success, render_options, render_mode)
        self._sim = ALL_V3_ENVIRONMENTS[task]()
        self._sim._partially_observable = False  # the goal is part of the privileged state
        self._sim.__dict__.pop("sawyer_observation_space", None)
        self._sim._set_task_called = True
        self._sim._freeze_rand_vec = False
        self._sim.seeded_rand_vec = True
        self._sim.max_path_length = max(self._sim.max_path_length, self.max_episode_steps or NO_LIMIT)
        self._model, self._data = self._sim.model, self._sim.data
        self._train_space = (self._sim._random_reset_space.low.copy(),
                             self._sim._random_reset_space.high.copy())
        position = self.factors.get("object_position")
        if position is not None:
            # Meta-World clips every observation to its bounds, the goal's included: goals drawn from the
            # widened ranges would be reported at the old edge (the expert would aim at the wrong point).
            margin = float(position.get("margin_m", 0.05))
            bounds = self._sim.sawyer_observation_space
            bounds.low[-3:] -= margin
            bounds.high[-3:] += margin
        groups, object_bodies = _geom_groups(self._sim.model)
        renderer = (SceneRenderer(self._sim.model, self._sim.data, self.cameras, width, height, self.render_options)
                    if self.cameras else None)
        # Meta-World clips its observation to these bounds; unbounded entries (object poses) get a
        # finite box far outside the workspace so the space is well-formed for normalisers.
        bounds = self._sim.sawyer_observation_space
        low = np.nan_to_num(bounds.low, neginf=-STATE_LIMIT).astype(np.float32)
        high = np.nan_to_num(bounds.high, posinf=STATE_LIMIT).astype(np.float32)
        n = self.proprio_dim if state == "proprio" else self.shared_state_dims["full"]
        self._finish_init(renderer, low[:n], high[:n], self.splits.table_height, TABLE_REGION, groups, object_bodies)
        self._full_obs = np.zeros(39)

    # ------------------------------------------------------------------------------------------ helpers
    def _reset_sim(self, seed: int) -> None:
        self._full_obs = self._reset_and_observe(seed)

    def _reset_and_observe(self, seed: int) -> np.ndarray:
        sim = self._sim
        position = self.factors.get("object_position")
        if position is None:
            sim.seed(seed)
            sim.reset()
            return self._forward_obs()
        margin = float(position.get("margin_m", 0.05))
        low, high = self._train_space
        used = list(position_coordinates(self.task))
        sim._random_reset_space.low[:] = low
        sim._random_reset_space.high[:] = high
        sim._random_reset_space.low[used] -= margin
        sim._random_reset_space.high[used] += margin
        self._redraw_outside_training(
            seed, lambda s: (sim.seed(s), sim.reset()),
            lambda: np.any((sim._last_rand_vec[used] < low[used] - 1e-9)
                           | (sim._last_rand_vec[used] > high[used] + 1e-9)))
        return self._forward_obs()

    def _forward_obs(self) -> np.ndarray:
        """The observation after reset, computed from the reset's final model and state.

        Several Meta-World tasks (drawer-open, window-close, dial-turn, faucet-open, lever-pull, window-open,
        door-lock) move a body by editing the model after their last forward pass, so the observation
        ``reset`` returns reports the previous episode's object position (window-close: 20 cm off) until the
        first step. The observation is read from a forward pass on a copy of the simulation's data: a forward
        pass on the simulation itself would perturb the next steps in the last bits (measured: 4e-16 in qpos),
        and the episodes must stay bit-identical to Meta-World's own.
        """
        sim = self._sim
        fresh = copy.copy(sim.data)
        mujoco.mj_forward(sim.model, fresh)
        live, sim.data = sim.data, fresh
        try:
            obs = sim._get_obs()  # frame-stacks with _prev_obs and sets it: redo what Meta-World's reset does
        finally:
            sim.data = live
        sim._prev_obs = obs[:18].copy()
        obs[18:36] = sim._prev_obs
        return obs.astype(np.float64)

    def _avoid_points(self) -> np.ndarray:
        points = [self._sim.data.xpos[b] for b in self._object_bodies]
        if self._sim._target_pos is not None:
            points.append(np.asarray(self._sim._target_pos, dtype=np.float64))
        return np.array(points).reshape(-1, 3)

    def _sim_step(self, action: np.ndarray) -> tuple[float, bool]:
        obs, reward, _, _, sim_info = self._sim.step(action)
        self._full_obs = obs
        return reward, bool(sim_info.get("success", 0.0) > 0)

    def _state(self) -> np.ndarray:
        return self._full_obs

    def _privileged(self) -> np.ndarray:
        return np.asarray(self._full_obs, dtype=np.float64).copy()

    def _close_sim(self) -> None:
        if getattr(self, "_sim", None) is not None:
            self._sim.close()
            self._sim = None
