"""robosuite v1.5 tasks (Panda, OSC pose) behind the vp_envs contract."""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import Any

import mujoco
import numpy as np
import yaml

from vp_envs import NO_LIMIT
from vp_envs.base import SuiteEnv
from vp_envs.rendering import RenderOptions, SceneRenderer

SUITE = "robosuite"
ROBOT = "Panda"
CONTROL_FREQ = 20  # Hz: robosuite's default; one step = 0.05 s of simulated time
# Lift draws its cube's size from the env's generator when the model is built: one fixed construction seed
# makes every instance (and every vector-env worker) build the same model. Episodes reseed at reset.
CONSTRUCTION_SEED = 0
# robosuite puts collision geoms in group 0, visual geoms in group 1 and the IK-target markers in group 2;
# only group 1 is meant to be seen (robosuite's own viewer shows the same).
VISUAL_GEOM_GROUP = 1
# Body-name prefixes of the robot's kinematic tree (arm, gripper, pedestal) in robosuite's naming.
ROBOT_PREFIXES = ("robot0_", "gripper0_", "fixed_mount0_", "mount0_")
TABLE_BODIES = ("table", "bin1", "bin2")  # the bins replace the table in PickPlace
STATE_LIMIT = 10.0  # metres / radians / unit quaternion entries never get near this
PROPRIO_DIM = 9  # eef position (3), eef quaternion (4), finger joint positions (2)

# What each task adds to info["privileged_state"] after the common fields (see privileged_layout):
# (field, kind, MuJoCo name). Quaternions are (x, y, z, w), robosuite's order in its observations.
_TASK_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Lift": (("cube_pos", "body_pos", "cube_main"), ("cube_quat", "body_quat", "cube_main")),
    "Stack": (("cubeA_pos", "body_pos", "cubeA_main"), ("cubeA_quat", "body_quat", "cubeA_main"),
              ("cubeB_pos", "body_pos", "cubeB_main"), ("cubeB_quat", "body_quat", "cubeB_main")),
    "PickPlaceCan": (("can_pos", "body_pos", "Can_main"), ("can_quat", "body_quat", "Can_main"),
                     ("goal_pos", "body_pos", "VisualCan_main")),
    "Door": (("handle_pos", "site_pos", "Door_handle"), ("latch_quat", "body_quat", "Door_latch"),
             ("door_pos", "body_pos", "Door_main"), ("hinge_qpos", "joint_qpos", "Door_hinge"),
             ("handle_qpos", "joint_qpos", "Door_latch_joint")),
}
_COMMON_FIELDS = (("step", 1), ("eef_pos", 3), ("eef_quat", 4), ("gripper_qpos", 2))
_KIND_SIZE = {"body_pos": 3, "body_quat": 4, "site_pos": 3, "joint_qpos": 1}
# Bodies robosuite's placement sampler puts on the table: the `position` split checks their draws.
_PLACED_BODIES = {"Lift": ("cube_main",), "Stack": ("cubeA_main", "cubeB_main"), "PickPlaceCan": ("Can_main",),
                  "Door": ("Door_main",)}


@functools.cache
def _task_file() -> dict[str, Any]:
    return yaml.safe_load((resources.files("vp_envs.tasks") / "robosuite.yaml").read_text())


@functools.cache
def _task_spec(task: str) -> dict[str, Any]:
    raw = _task_file()
    return {**raw["defaults"], **raw["tasks"][task]}


@functools.cache
def task_instructions() -> dict[str, str]:
    """Task name -> instruction sentence, from ``vp_envs/tasks/robosuite.yaml``."""
    return {name: body["instruction"] for name, body in _task_file()["tasks"].items()}


def list_tasks() -> list[str]:
    return list(task_instructions())


@functools.cache
def privileged_layout(task: str) -> dict[str, slice]:
    """Field name -> slice of ``info["privileged_state"]`` for ``task``.

    Every task starts with ``step`` (steps since reset; the experts restart their plan at 0), ``eef_pos``,
    ``eef_quat`` (x, y, z, w) of the grip site and ``gripper_qpos``; then the task's objects (see
    ``_TASK_FIELDS``). Positions are in the world frame, which the Panda's base frame is aligned with.
    """
    if task not in _TASK_FIELDS:
        raise ValueError(f"unknown robosuite task {task!r}; known: {', '.join(_TASK_FIELDS)}")
    sizes = list(_COMMON_FIELDS) + [(name, _KIND_SIZE[kind]) for name, kind, _ in _TASK_FIELDS[task]]
    layout, start = {}, 0
    for name, size in sizes:
        layout[name] = slice(start, start + size)
        start += size
    return layout


@functools.cache
def _robosuite():
    """Import robosuite once, without its import-time log lines.

    robosuite warns on import about optional packages (robosuite_models, mink) and a missing private macro file,
    none of which this layer uses, and logs controller notices at INFO on every ``make``.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import robosuite
        from robosuite.controllers import load_composite_controller_config
    finally:
        logging.disable(previous)
    logging.getLogger("robosuite_logs").setLevel(logging.ERROR)
    return robosuite, load_composite_controller_config


def _quat_xyzw_from_mat(xmat: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(xmat, dtype=np.float64).reshape(9))
    return np.roll(q, -1)  # MuJoCo (w, x, y, z) -> (x, y, z, w)


class _RobosuiteRenderer(SceneRenderer):
    """:class:`SceneRenderer` for robosuite models: only robosuite's visual geom group is drawn (collision
    geoms would z-fight with the visual ones), and the robot's meshes are vertex-clustered in the render-only
    copy (see ``render.mesh_voxel_m_px`` in the tasks file)."""

    def __init__(self, model, data, cameras, width, height, options, voxel_m: float):
        super().__init__(model, data, cameras, width, height, options, geomgroups=(VISUAL_GEOM_GROUP,))
        if voxel_m > 0:
            _cluster_meshes(self.model, voxel_m)


def _cluster_meshes(model: mujoco.MjModel, voxel: float) -> None:
    """Simplify the visual meshes of ``model`` in place by vertex clustering on a ``voxel`` grid.

    Vertices in one voxel merge into their mean; faces that collapse are dropped; normals are recomputed
    (area-weighted). Meshes drawn with a textured material, or small enough not to matter, are left alone.
    """
    textured = set()
    visual = set()
    for g in range(model.ngeom):
        if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH or model.geom_group[g] != VISUAL_GEOM_GROUP:
            continue
        mesh, mat = int(model.geom_dataid[g]), int(model.geom_matid[g])
        visual.add(mesh)
        if mat >= 0 and (model.mat_texid[mat] >= 0).any():
            textured.add(mesh)
    for i in sorted(visual - textured):
        va, nv = model.mesh_vertadr[i], model.mesh_vertnum[i]
        fa, nf = model.mesh_faceadr[i], model.mesh_facenum[i]
        if nf < 500:
            continue
        verts = model.mesh_vert[va:va + nv].astype(np.float64)
        _, cluster, counts = np.unique(np.floor(verts / voxel).astype(np.int64), axis=0,
                                       return_inverse=True, return_counts=True)
        cluster = cluster.ravel()
        new_verts = np.zeros((counts.size, 3))
        np.add.at(new_verts, cluster, verts)
        new_verts /= counts[:, None]
        faces = cluster[model.mesh_face[fa:fa + nf]]
        faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
        _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
        faces = faces[np.sort(first)]
        tri = new_verts[faces]
        face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = np.zeros_like(new_verts)
        for corner in range(3):
            np.add.at(normals, faces[:, corner], face_normals)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        k, f = counts.size, len(faces)
        model.mesh_vert[va:va + k] = new_verts
        model.mesh_vertnum[i] = k
        model.mesh_face[fa:fa + f] = faces
        model.mesh_facenum[i] = f
        na = model.mesh_normaladr[i]
        model.mesh_normal[na:na + k] = normals
        model.mesh_normalnum[i] = k
        model.mesh_facenormal[fa:fa + f] = faces
        model.mesh_texcoordnum[i] = 0  # untextured: texture coordinates are never read


def _geom_groups(model) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sort visible geoms by role for the colour factors (robosuite's naming conventions)."""
    groups: dict[str, list[int]] = {k: [] for k in ("floor", "table", "background", "robot", "object")}
    for g in range(model.ngeom):
        if model.geom_group[g] != VISUAL_GEOM_GROUP:
            continue
        body = int(model.geom_bodyid[g])
        name = model.body(body).name
        if model.geom(g).name == "floor":
            groups["floor"].append(g)
        elif body == 0:  # the arena's walls
            groups["background"].append(g)
        elif name in TABLE_BODIES:
            groups["table"].append(g)
        elif name.startswith(ROBOT_PREFIXES):
            groups["robot"].append(g)
        else:
            groups["object"].append(g)
    arrays = {k: np.asarray(v, dtype=int) for k, v in groups.items()}
    return arrays, np.unique(model.geom_bodyid[arrays["object"]])


class RobosuiteEnv(SuiteEnv):
    """A robosuite v1.5 task (Panda arm) with pixels, a split and a seeded episode layout.

    ## Action space
    ``Box(-1, 1, (7,), float32)``: robosuite's OSC pose controller in delta mode, in the robot base frame (aligned
    with the world here): position delta (x, y, z; 1 = a 5 cm target offset for the OSC controller: the hand moves about 1.25 cm per step at a sustained +1, measured), rotation delta as an axis-angle vector (1 = 0.5
    rad) and gripper (-1 open, +1 close). robosuite's own convention (``BASIC`` composite controller), unchanged.

    ## Observation space
    ``Dict(pixels=Dict(<camera>: Box(0, 255, (H, W, 3), uint8)), state=Box(float32))``. Images are upright.
    ``state`` is ``proprio`` (9-D: end-effector position, quaternion (x, y, z, w), the two finger joint positions)
    by default or ``full`` (proprio followed by robosuite's ``object-state`` vector for the task). With
    ``cameras=()`` there is no ``pixels`` key (state-only, fast).

    ## Reward and episode end
    robosuite's staged dense reward (``reward_shaping=True``; 1.0 at success). ``terminated`` is True at success
    when ``terminate_on_success``; ``truncated`` after ``max_episode_steps``.

    ## Info
    ``success`` (bool), ``instruction``, ``task``, ``split``, ``level``, ``seed`` and ``privileged_state`` (a flat
    vector of the step count, the end-effector and the task's object poses and joints, laid out by
    :func:`privileged_layout`; for scripted experts and analysis, never for policies).

    ## Starting state
    ``reset(seed=s)`` reseeds robosuite's generator with ``s`` and draws object placements and the robot's
    initial joint noise from robosuite's ranges (or the ``position`` split's widened ones);
    ``reset(options={"episode": i})`` uses the split's seed for episode ``i`` (:func:`vp_envs.episode_seed`).
    Perceptual factors of the split are drawn from the same seed.

    ## Arguments
    task, split, level (graded shift size, 1-based; default from the split file), cameras (default: the task's
    camera from ``vp_envs/tasks/robosuite.yaml``), width, height, state (``proprio`` | ``full``),
    max_episode_steps, terminate_on_success, render_options (:class:`RenderOptions`), render_mode
    (``rgb_array`` returns the first camera's frame).

    ## Version history
    Ids follow robosuite v1.5 task names; the split file carries its own version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}
    suite = SUITE
    action_dim, proprio_dim = 7, PROPRIO_DIM
    action_doc = "dx, dy, dz, drx, dry, drz, gripper"
    state_limit = STATE_LIMIT
    _action_dtype = np.float64
    task_instructions = staticmethod(task_instructions)

    @classmethod
    def privileged_dim(cls) -> int:
        return max(max(s.stop for s in privileged_layout(t).values()) for t in list_tasks())

    def __init__(self, task: str, split: str = "train", level: int | None = None,
                 cameras: tuple[str, ...] | list[str] | None = None, width: int = 64, height: int = 64,
                 state: str = "proprio", max_episode_steps: int | None = 500, terminate_on_success: bool = False,
                 render_options: RenderOptions | dict | None = None, render_mode: str | None = None):
        spec = _task_spec(task) if task in task_instructions() else {}
        super().__init__(task, split, level, (spec.get("camera"),) if cameras is None else tuple(cameras),
                         width, height, state, max_episode_steps, terminate_on_success, render_options, render_mode)
        robosuite, load_controller = _robosuite()
        self._sim = robosuite.make(
            task, robots=ROBOT, controller_configs=load_controller(controller="BASIC", robot=ROBOT),
            has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False, control_freq=CONTROL_FREQ,
            horizon=self.max_episode_steps or NO_LIMIT, ignore_done=True,  # episode ends are ours
            # A hard reset rebuilds the XML and the MjModel every episode (1-5 s) and would orphan the renderer's copy.
            hard_reset=False, reward_shaping=True, seed=CONSTRUCTION_SEED)
        if self._sim.action_spec[0].shape != (self.action_dim,):
            raise RuntimeError(f"robosuite {task} has {self._sim.action_spec[0].shape} actions; vp_envs expects "
                               f"({self.action_dim},) (OSC pose + gripper)")
        self._model = self._sim.sim.model._model
        self._data = self._sim.sim.data._data
        robot = self._sim.robots[0]
        self._eef_site = int(robot.eef_site_id["right"])
        self._gripper_qpos = np.asarray(robot._ref_gripper_joint_pos_indexes["right"], dtype=int)
        self._fields = [(kind, self._mj_id(kind, name)) for _, kind, name in _TASK_FIELDS[task]]
        self._layout = privileged_layout(task)
        self._avoid = [self._layout[n] for n, kind, _ in _TASK_FIELDS[task] if kind in ("body_pos", "site_pos")]
        self._samplers = self._object_samplers()
        self._train_ranges = [(list(s.x_range), list(s.y_range)) for s in self._samplers]
        self._max_margin = spec["max_position_margin_m"]

        self._reset_sim(CONSTRUCTION_SEED)  # robosuite hides its sites on reset: copy after it
        groups, object_bodies = _geom_groups(self._model)
        voxel = float(_task_file()["render"]["mesh_voxel_m_px"]) / max(width, height)
        renderer = (_RobosuiteRenderer(self._model, self._data, self.cameras, width, height, self.render_options,
                                       voxel) if self.cameras else None)
        n = PROPRIO_DIM if state == "proprio" else PROPRIO_DIM + self._sim_obs["object-state"].size
        self._finish_init(renderer, np.full(n, -STATE_LIMIT, np.float32), np.full(n, STATE_LIMIT, np.float32),
                          float(spec.get("table_height", self.splits.table_height)),
                          tuple(tuple(float(v) for v in axis) for axis in spec["table_region"]),
                          groups, object_bodies)

    # ------------------------------------------------------------------------------------------ helpers
    def _mj_id(self, kind: str, name: str) -> int:
        obj = {"body_pos": mujoco.mjtObj.mjOBJ_BODY, "body_quat": mujoco.mjtObj.mjOBJ_BODY,
               "site_pos": mujoco.mjtObj.mjOBJ_SITE, "joint_qpos": mujoco.mjtObj.mjOBJ_JOINT}[kind]
        i = mujoco.mj_name2id(self._model, obj, name)
        if i < 0:
            raise RuntimeError(f"robosuite task {self.task!r} has no {kind.split('_')[0]} {name!r}")
        return int(self._model.jnt_qposadr[i]) if kind == "joint_qpos" else int(i)

    def _object_samplers(self) -> list:
        from robosuite.utils.placement_samplers import SequentialCompositeSampler

        sampler = self._sim.placement_initializer
        if isinstance(sampler, SequentialCompositeSampler):
            # PickPlace: one sampler places the real objects; the others place the goal markers (fixed spots).
            return [sampler.samplers["CollisionObjectSampler"]]
        return [sampler]

    def _reset_sim(self, seed: int) -> None:
        self._sim_obs = self._reset_and_observe(seed)

    def _reset_and_observe(self, seed: int) -> dict[str, np.ndarray]:
        sim = self._sim
        position = self.factors.get("object_position")
        if position is None:
            self._reseed(seed)
            return sim.reset()
        margin = float(position.get("margin_m", 0.05))
        if self._max_margin is not None:
            margin = min(margin, float(self._max_margin))
        for sampler, (x_range, y_range) in zip(self._samplers, self._train_ranges):
            sampler.x_range = [x_range[0] - margin, x_range[1] + margin]
            sampler.y_range = [y_range[0] - margin, y_range[1] + margin]
        return self._redraw_outside_training(seed, lambda s: (self._reseed(s), sim.reset())[1],
                                             lambda: not self._inside_training_ranges())

    def _reseed(self, seed: int) -> None:
        # robosuite hands one Generator object to its placement samplers and robot init noise: reseed it in
        # place (assigning a new generator to env.rng would leave the samplers drawing from the old one).
        self._sim.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state

    def _inside_training_ranges(self) -> bool:
        for sampler, (x_range, y_range) in zip(self._samplers, self._train_ranges):
            ref = np.asarray(sampler.reference_pos, dtype=np.float64)
            for obj in sampler.mujoco_objects:
                if obj.root_body not in _PLACED_BODIES[self.task]:
                    continue  # PickPlaceCan parks the other groceries off the table after placing them
                # robosuite keeps objects' footprints inside the range when asked to: the training support is
                # then the range shrunk by the object's radius.
                r = obj.horizontal_radius if sampler.ensure_object_boundary_in_range else 0.0
                xy = self._data.xpos[self._model.body(obj.root_body).id][:2] - ref[:2]
                if not (x_range[0] + r - 1e-9 <= xy[0] <= x_range[1] - r + 1e-9
                        and y_range[0] + r - 1e-9 <= xy[1] <= y_range[1] - r + 1e-9):
                    return False
        return True

    def _avoid_points(self) -> np.ndarray:
        priv = self._privileged()
        return np.array([priv[s] for s in self._avoid]).reshape(-1, 3)

    def _proprio(self) -> np.ndarray:
        d = self._data
        return np.concatenate([d.site_xpos[self._eef_site], _quat_xyzw_from_mat(d.site_xmat[self._eef_site]),
                               d.qpos[self._gripper_qpos]])

    def _privileged(self) -> np.ndarray:
        d = self._data
        parts = [np.array([float(self._steps)]), self._proprio()]
        for kind, i in self._fields:
            if kind == "body_pos":
                parts.append(d.xpos[i])
            elif kind == "body_quat":
                parts.append(np.roll(d.xquat[i], -1))
            elif kind == "site_pos":
                parts.append(d.site_xpos[i])
            else:
                parts.append(d.qpos[i:i + 1])
        return np.concatenate(parts).astype(np.float64)

    def _sim_step(self, action: np.ndarray) -> tuple[float, bool]:
        self._sim_obs, reward, _, _ = self._sim.step(action)
        return reward, bool(self._sim._check_success())

    def _state(self) -> np.ndarray:
        if self.state_mode == "proprio":
            return self._proprio()
        return np.concatenate([self._proprio(), self._sim_obs["object-state"]])

    def _close_sim(self) -> None:
        if getattr(self, "_sim", None) is not None:
            self._sim.close()
            self._sim = None
