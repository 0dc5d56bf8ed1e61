"""Scripted experts for the robosuite tasks: staged controllers over ``info["privileged_state"]``.

``robosuite_expert(task)`` returns a callable ``(obs, info) -> action`` that reads only
``info["privileged_state"]`` (laid out by :func:`vp_envs.robosuite_env.privileged_layout`), so it works on one
env or on one slot of a vectorised env alike (one expert per slot). Each expert is a small state machine
(approach, descend, grasp, ...); it restarts its plan whenever the state's step counter is 0, i.e. after a reset.

Actions follow the env's convention: position delta (1 = a 5 cm controller target offset, about 1.25 cm of motion per step) and axis-angle rotation delta (1 = 0.5 rad) in
the robot base frame, which is aligned with the world in these tasks, and the gripper (-1 open, +1 close).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy.spatial.transform import Rotation

from vp_envs.robosuite_env import privileged_layout

Expert = Callable[[Any, dict], np.ndarray]

POS_SCALE = 0.05  # metres per unit action (robosuite's OSC_POSE output_max for position)
ROT_SCALE = 0.5  # radians per unit action (OSC_POSE output_max for rotation)
OPEN, CLOSE = -1.0, 1.0
# Gripper pointing straight down: the grip site's x along world +y, the finger axis (y) along world +x.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
CUBE_HALF = 0.02  # robosuite's cubes are 4 cm (Lift draws 4.0-4.4 cm; Stack uses 4 cm and 5 cm)


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _yaw(quat_xyzw: np.ndarray) -> float:
    r = Rotation.from_quat(quat_xyzw).as_matrix()
    return float(np.arctan2(r[1, 0], r[0, 0]))


def _wrap(angle: float, period: float) -> float:
    return (angle + period / 2) % period - period / 2


class _State:
    """Named view of one privileged-state vector."""

    def __init__(self, vector: np.ndarray, layout: dict[str, slice]):
        self._v, self._layout = vector, layout

    def __getattr__(self, name: str) -> np.ndarray:
        layout = self.__dict__["_layout"]
        if name not in layout:
            raise AttributeError(name)
        return self.__dict__["_v"][layout[name]]


class _Staged:
    """A state machine over stages; subclasses implement :meth:`plan` for the current stage."""

    def __init__(self):
        self.stage = 0
        self.t_stage = 0

    def restart(self) -> None:
        self.stage, self.t_stage = 0, 0

    def advance(self) -> None:
        self.stage += 1
        self.t_stage = 0

    def __call__(self, s: _State) -> np.ndarray:
        action = self.plan(s)
        self.t_stage += 1
        return action

    def plan(self, s: _State) -> np.ndarray:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- helpers
    @staticmethod
    def move(s: _State, target, target_rot=None, grip=OPEN, max_speed=1.0) -> np.ndarray:
        """A proportional step toward ``target`` (and ``target_rot``, a rotation matrix), clipped to the range."""
        pos = np.clip((np.asarray(target) - s.eef_pos) / POS_SCALE, -max_speed, max_speed)
        rot = np.zeros(3)
        if target_rot is not None:
            current = Rotation.from_quat(s.eef_quat).as_matrix()
            rot = np.clip(Rotation.from_matrix(target_rot @ current.T).as_rotvec() / ROT_SCALE, -1, 1)
        return np.concatenate([pos, rot, [grip]]).astype(np.float32)

    @staticmethod
    def near(s: _State, target, tol_xy: float, tol_z: float) -> bool:
        err = np.asarray(target) - s.eef_pos
        return bool(np.linalg.norm(err[:2]) < tol_xy and abs(err[2]) < tol_z)


class _LiftExpert(_Staged):
    """Hover over the cube with the fingers aligned to its faces, descend, close, lift 20 cm."""

    cube = "cube"

    def grasp_rot(self, quat) -> np.ndarray:
        return _rot_z(_wrap(_yaw(quat), np.pi / 2)) @ R_DOWN  # a cube looks the same every quarter turn

    def plan(self, s: _State) -> np.ndarray:
        c = getattr(s, f"{self.cube}_pos")
        if self.stage == 0:  # hover 10 cm above, align yaw
            self.rot = self.grasp_rot(getattr(s, f"{self.cube}_quat"))
            target = c + [0, 0, 0.10]
            if self.near(s, target, 0.01, 0.02) and self.t_stage > 5:
                self.advance()
            return self.move(s, target, self.rot, OPEN)
        if self.stage == 1:  # descend to just below the cube's centre
            target = c + [0, 0, -0.005]
            if self.near(s, target, 0.008, 0.008) or self.t_stage > 40:
                self.hold = target
                self.advance()
            return self.move(s, target, self.rot, OPEN)
        if self.stage == 2:  # close in place
            if self.t_stage > 8:
                self.advance()
            return self.move(s, self.hold, self.rot, CLOSE)
        return self.lifted(s)

    def lifted(self, s: _State) -> np.ndarray:
        return self.move(s, np.r_[s.eef_pos[:2], self.hold[2] + 0.2], self.rot, CLOSE, max_speed=0.6)


class _StackExpertV1(_LiftExpert):
    """Version 1 of the Stack expert (the demos of every robosuite row made before 2026-12-07): grasp cube A as
    in Lift, lift it straight up to carry height, then carry it above cube B, lower it until it rests on B,
    release and back off. At the lift -> carry threshold its action jumps from (xy 0, z +0.3) to (xy 0.7, z 0);
    BC stalls under that jump (docs/results.md, robosuite-lite version 2), so version 2 replaced it."""

    cube = "cubeA"
    CUBE_B_HALF = 0.025

    def lifted(self, s: _State) -> np.ndarray:
        a, b = s.cubeA_pos, s.cubeB_pos
        offset = s.eef_pos - a  # the hand relative to the cube it holds
        carry_z = b[2] + self.CUBE_B_HALF + CUBE_HALF + 0.04  # cube A's centre 4 cm above B's top while moving
        if self.stage == 3:  # lift
            if s.eef_pos[2] > carry_z + offset[2] - 0.015:
                self.advance()
            return self.move(s, np.r_[s.eef_pos[:2], carry_z + offset[2]], self.rot, CLOSE)
        if self.stage == 4:  # carry over B
            if np.linalg.norm(a[:2] - b[:2]) < 0.006 or self.t_stage > 80:
                self.advance()
            return self.move(s, np.r_[b[:2] + offset[:2], carry_z + offset[2]], self.rot, CLOSE, max_speed=0.7)
        if self.stage == 5:  # lower until A is 3 mm above B's top
            place_z = b[2] + self.CUBE_B_HALF + CUBE_HALF + 0.003
            if a[2] < place_z + 0.004 or self.t_stage > 40:
                self.release = s.eef_pos.copy()
                self.advance()
            return self.move(s, np.r_[b[:2] + offset[:2], place_z + offset[2]], self.rot, CLOSE, max_speed=0.4)
        if self.stage == 6:  # release in place
            if self.t_stage > 6:
                self.advance()
            return self.move(s, self.release, self.rot, OPEN)
        # back off upward: Stack only counts once the gripper has let go
        return self.move(s, self.release + [0, 0, 0.08], self.rot, OPEN, max_speed=0.5)


class _StackExpert(_StackExpertV1):
    """Version 2 of the Stack expert: grasp cube A as in Lift, then lift and carry it at once toward the point
    over cube B at carry height, the horizontal speed ramping from 0 to full over the 2 cm in which A's bottom
    clears B's top, so the action changes smoothly along the path (version 1 lifted straight up, then carried:
    a jump in the action at a height threshold that BC blurs into a hover); lower, release and back off as in
    version 1. Probe and outcome: results/probes/robosuite-lite-v2-stack-ceiling.json."""

    def lifted(self, s: _State) -> np.ndarray:
        if self.stage == 3:  # version 1's straight lift: skipped, the carry below lifts as it goes
            self.advance()
        if self.stage != 4:  # stages 5-7 (lower, release, back off) are version 1's
            return super().lifted(s)
        a, b = s.cubeA_pos, s.cubeB_pos
        offset = s.eef_pos - a
        carry_z = b[2] + self.CUBE_B_HALF + CUBE_HALF + 0.04
        if np.linalg.norm(a[:2] - b[:2]) < 0.006 or self.t_stage > 80:
            self.advance()  # to lowering, planned from this same state
            return super().lifted(s)
        clear = np.clip((a[2] - CUBE_HALF - (b[2] + self.CUBE_B_HALF)) / 0.02, 0.0, 1.0)  # 0 low, 1: A over B's top
        xy = s.eef_pos[:2] + clear * (b[:2] + offset[:2] - s.eef_pos[:2])
        return self.move(s, np.r_[xy, carry_z + offset[2]], self.rot, CLOSE, max_speed=0.7)


class _PickPlaceCanExpert(_Staged):
    """Grasp the can from above, lift it over the bin walls, carry it over its spot, lower, release."""

    CARRY_Z = 1.05  # clears the 10 cm bin walls (top at 0.9 m) with the can hanging below the fingers

    def plan(self, s: _State) -> np.ndarray:
        c, g = s.can_pos, s.goal_pos
        rot = R_DOWN  # a cylinder: any yaw grasps it
        if self.stage == 0:  # hover
            target = c + [0, 0, 0.12]
            if self.near(s, target, 0.01, 0.02):
                self.advance()
            return self.move(s, target, rot, OPEN)
        if self.stage == 1:  # descend to 1 cm above the can's centre
            target = c + [0, 0, 0.01]
            if self.near(s, target, 0.008, 0.01) or self.t_stage > 40:
                self.hold = target
                self.advance()
            return self.move(s, target, rot, OPEN)
        if self.stage == 2:  # close in place
            if self.t_stage > 10:
                self.advance()
            return self.move(s, self.hold, rot, CLOSE)
        offset = s.eef_pos - c
        if self.stage == 3:  # lift
            if s.eef_pos[2] > self.CARRY_Z - 0.02:
                self.advance()
            return self.move(s, np.r_[s.eef_pos[:2], self.CARRY_Z], rot, CLOSE)
        if self.stage == 4:  # carry over the spot
            if np.linalg.norm(c[:2] - g[:2]) < 0.015 or self.t_stage > 100:
                self.advance()
            return self.move(s, np.r_[g[:2] + offset[:2], self.CARRY_Z], rot, CLOSE, max_speed=0.8)
        if self.stage == 5:  # lower to 6 cm above the spot
            if c[2] < g[2] + 0.07 or self.t_stage > 30:
                self.advance()
            return self.move(s, np.r_[g[:2] + offset[:2], g[2] + 0.06 + offset[2]], rot, CLOSE, max_speed=0.5)
        # release, then rise: success needs the hand away from the can
        return self.move(s, np.r_[s.eef_pos[:2], s.eef_pos[2] + 0.03 * (self.t_stage > 8)], rot, OPEN)


class _DoorExpert(_Staged):
    """Grasp the lever near its tip, turn it down to unlatch, then pull the door open toward the robot."""

    UNLATCH_RAD = 0.5  # the latch releases well before this lever angle

    def plan(self, s: _State) -> np.ndarray:
        h = s.handle_pos
        if self.stage == 0:  # hover over the lever, fingers closing across the panel's normal
            normal = Rotation.from_quat(s.latch_quat).as_matrix()[:, 1]
            normal = np.r_[normal[:2], 0.0] / np.linalg.norm(normal[:2])
            down = np.array([0.0, 0.0, -1.0])
            self.rot = np.stack([np.cross(normal, down), normal, down], axis=1)
            self.pull = -normal  # the lever sits on the robot's side of the panel
            target = h + [0, 0, 0.08]
            if self.near(s, target, 0.01, 0.02) and self.t_stage > 5:
                self.advance()
            return self.move(s, target, self.rot, OPEN)
        if self.stage == 1:  # descend onto the lever
            if self.near(s, h, 0.008, 0.008) or self.t_stage > 40:
                self.advance()
            return self.move(s, h, self.rot, OPEN)
        if self.stage == 2:  # close on it
            if self.t_stage > 8:
                self.advance()
            return self.move(s, h, self.rot, CLOSE)
        if self.stage == 3:  # push the lever down
            if abs(float(s.handle_qpos[0])) > self.UNLATCH_RAD or self.t_stage > 40:
                self.advance()
            return self.move(s, h + [0, 0, -0.05], self.rot, CLOSE, max_speed=0.5)
        return self.move(s, h + self.pull * 0.06, self.rot, CLOSE, max_speed=0.6)  # pull


_EXPERTS = {"Lift": _LiftExpert, "Stack": _StackExpert, "PickPlaceCan": _PickPlaceCanExpert, "Door": _DoorExpert}
# Earlier versions of an expert whose plan changed, kept so that older datasets can be recorded again
# (``vp-data --expert-version 1``). A task absent here has only version 1.
_VERSIONS = {"Stack": {1: _StackExpertV1, 2: _StackExpert}}


def resolve_version(task: str, version: int | None = None) -> int:
    """The version of ``task``'s expert to use when asked for ``version`` (None: the latest): the newest one
    not above it, so ``1`` reproduces every expert as it was first shipped."""
    if version is not None and version < 1:
        raise ValueError(f"expert versions start at 1; got {version}")
    return max(v for v in _VERSIONS.get(task, {1: None}) if version is None or v <= version)


def robosuite_expert(task: str, version: int | None = None) -> Expert:
    """The scripted expert for robosuite ``task`` as ``(obs, info) -> action`` (7-D float32); ``version``: see
    :func:`resolve_version` (None: the latest)."""
    if task not in _EXPERTS:
        raise ValueError(f"no scripted expert for robosuite task {task!r}; known: {', '.join(_EXPERTS)}")
    layout = privileged_layout(task)
    policy = _VERSIONS.get(task, {1: _EXPERTS[task]})[resolve_version(task, version)]()

    def act(obs: Any, info: dict) -> np.ndarray:
        if "privileged_state" not in info:
            raise KeyError("the scripted expert needs info['privileged_state'] from a vp_envs env")
        state = _State(np.asarray(info["privileged_state"], dtype=np.float64), layout)
        if state.step[0] == 0:
            policy.restart()
        return np.clip(policy(state), -1.0, 1.0)

    return act
