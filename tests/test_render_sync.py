"""Observations follow the simulator: what the frame shows is where the episode put things.

Until render version 2, 33 Meta-World tasks placed their objects and goal markers at reset by editing the
model (``model.body("door").pos = ...``) while the renderer drew its own copy of the model, so the frames
showed every door, drawer and button at the model file's place and two different episodes could give
byte-identical first frames. Nothing failed: training and evaluation saw the same wrong picture. These
tests, over every task of both suites, would have caught it:

- the render copy holds the simulation's model arrays after every reset (all of them but the compiled
  assets the renderer owns, which no task edits);
- first frames of two episodes whose task object stands in different places differ;
- each object geom the renderer draws sits, in the image, where the simulator's pose of it projects
  (MuJoCo's segmentation rendering of that geom alone; its centroid against the pinhole projection of
  ``data.geom_xpos``), within about a pixel at 128 px.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest

import vp_envs
from vp_envs.rendering import RENDER_OWNED_PREFIXES, SceneRenderer

from conftest import frame

MW_TASKS = vp_envs.list_envs("metaworld")
RS_TASKS = vp_envs.list_envs("robosuite")
ALL_TASKS = MW_TASKS + RS_TASKS
# Meta-World tasks in which no body moves between episodes, only the goal site: their goal marker is
# 1-2 px or less at 64 px, so their first frames may be equal (the projection test measures it at 256 px).
GOAL_ONLY = {"vp/metaworld-plate-slide-side-v3", "vp/metaworld-plate-slide-back-v3",
             "vp/metaworld-plate-slide-back-side-v3", "vp/metaworld-pick-out-of-hole-v3"}
PROBE_PX = 256  # rendered at 256 px, errors reported at 128 px
TOLERANCE_PX_AT_128 = 1.0


def _sim(env) -> tuple[mujoco.MjModel, mujoco.MjData]:
    env = env.unwrapped
    if hasattr(env, "_sim") and hasattr(env._sim, "model") and isinstance(env._sim.model, mujoco.MjModel):
        return env._sim.model, env._sim.data  # Meta-World
    return env._model, env._data  # robosuite


def _truth(model: mujoco.MjModel, data: mujoco.MjData) -> mujoco.MjData:
    """Forward kinematics of the simulation's own model at its current configuration (the simulator's data
    may hold stale poses right after a reset that edited the model)."""
    truth = mujoco.MjData(model)
    truth.qpos[:] = data.qpos
    truth.mocap_pos[:] = data.mocap_pos
    truth.mocap_quat[:] = data.mocap_quat
    mujoco.mj_kinematics(model, truth)
    return truth


def _object_bodies_pose(env) -> np.ndarray:
    """World positions of the task's object bodies (everything but robot, table and floor), as simulated."""
    model, data = _sim(env)
    return _truth(model, data).xpos[env.unwrapped._object_bodies].copy()


def _arrays(model: mujoco.MjModel, prefixes=None) -> dict[str, np.ndarray]:
    out = {}
    for name in dir(model):
        if name.startswith("_"):
            continue
        if prefixes is not None and not name.startswith(prefixes):
            continue
        value = getattr(model, name, None)
        if isinstance(value, np.ndarray):
            out[name] = value.copy()
    return out


@pytest.mark.parametrize("env_id", ALL_TASKS)
def test_frames_render_copy_and_drawn_poses_follow_the_simulator(make_env, env_id):
    """Three checks on one env per task (building its GL context is most of a check's time): first frames
    differ when an object moved, the render copy holds the simulation's model after every reset, and each
    object is drawn where the simulator puts it."""
    env = make_env(env_id, split="test", width=64, height=64)
    _check_first_frames_differ_when_an_object_moved(env, env_id)
    _check_render_copy_holds_the_simulation_model_after_every_reset(env, env_id)
    _check_objects_and_goals_are_drawn_where_the_simulator_puts_them(env, env_id)


def _check_render_copy_holds_the_simulation_model_after_every_reset(env, env_id):
    model, data = _sim(env)
    renderer: SceneRenderer = env.unwrapped._renderer
    owned_at_load = _arrays(model, RENDER_OWNED_PREFIXES)
    for episode in range(3):
        env.reset(options={"episode": episode})
        for _ in range(2):
            env.step(env.action_space.sample() * 0)
        rolled = set(int(i) for i in renderer._rolled)
        for name in renderer._synced:
            mine, theirs = getattr(renderer.model, name), getattr(model, name)
            if name == "cam_quat" and rolled:
                keep = [i for i in range(model.ncam) if i not in rolled]
                mine, theirs = mine[keep], theirs[keep]
            np.testing.assert_array_equal(mine, theirs, err_msg=f"{env_id}: render copy's {name} differs "
                                                                f"from the simulation's after episode {episode}")
        # The arrays the renderer does not take from the simulation: no task may edit them.
        for name, before in owned_at_load.items():
            np.testing.assert_array_equal(getattr(model, name), before, err_msg=f"{env_id} edited {name}")


def _check_first_frames_differ_when_an_object_moved(env, env_id):
    first_obs, _ = env.reset(options={"episode": 0})
    first_pose = _object_bodies_pose(env)
    for episode in range(1, 6):
        obs, _ = env.reset(options={"episode": episode})
        moved = float(np.linalg.norm(_object_bodies_pose(env) - first_pose, axis=1).max())
        if moved > 0.01:
            assert env_id not in GOAL_ONLY
            assert not np.array_equal(frame(obs), frame(first_obs)), (
                f"{env_id}: an object moved {100 * moved:.1f} cm between episodes 0 and {episode} but the "
                "first frames are identical")
            return
    assert env_id in GOAL_ONLY, f"{env_id}: no object moved over 6 test episodes"


def _project(cam_pos, cam_mat, fovy_deg, points, size) -> np.ndarray:
    """Pixel (column, row) of world points (N, 3) in a MuJoCo camera image of ``size`` x ``size``."""
    local = (np.asarray(points) - cam_pos) @ cam_mat  # camera frame: x right, y up, looking along -z
    f = 0.5 * size / np.tan(np.deg2rad(fovy_deg) / 2)
    depth = -local[:, 2]
    return np.stack([size / 2 + f * local[:, 0] / depth, size / 2 - f * local[:, 1] / depth], axis=1)


def _hull_centroid(points: np.ndarray) -> np.ndarray:
    """Area centroid of the convex hull of 2-D points."""
    from scipy.spatial import ConvexHull

    poly = points[ConvexHull(points).vertices]
    x, y = poly[:, 0], poly[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = cross.sum() / 2
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6 * area)


def _unit_sphere(n: int = 400) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def _surface(model: mujoco.MjModel, kind: str, i: int, size: np.ndarray) -> np.ndarray | None:
    """Points (local frame) whose convex hull is the geom's or site's convex hull; None for planes etc."""
    gtype = int(model.geom_type[i] if kind == "geom" else model.site_type[i])
    T = mujoco.mjtGeom
    if gtype == T.mjGEOM_SPHERE:
        return size[0] * _unit_sphere()
    if gtype == T.mjGEOM_ELLIPSOID:
        return size[:3] * _unit_sphere()
    if gtype == T.mjGEOM_CAPSULE:
        ball = size[0] * _unit_sphere()
        return np.concatenate([ball + [0, 0, size[1]], ball - [0, 0, size[1]]])
    if gtype == T.mjGEOM_CYLINDER:
        a = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        ring = np.stack([size[0] * np.cos(a), size[0] * np.sin(a), np.zeros_like(a)], axis=1)
        return np.concatenate([ring + [0, 0, size[1]], ring - [0, 0, size[1]]])
    if gtype == T.mjGEOM_BOX:
        return np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * size[:3]
    if gtype == T.mjGEOM_MESH and kind == "geom":
        mesh = int(model.geom_dataid[i])
        start, count = int(model.mesh_vertadr[mesh]), int(model.mesh_vertnum[mesh])
        return np.asarray(model.mesh_vert[start:start + count], dtype=np.float64)
    return None


def _probes(model: mujoco.MjModel, bodies: np.ndarray, limit: int = 8) -> list[tuple[str, int]]:
    """What to measure: the largest drawable geom of each object body (up to ``limit`` bodies) and every
    visible site outside the robot (goal markers)."""
    chosen = []
    for body in bodies[:limit]:
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body
                 and _surface(model, "geom", g, model.geom_size[g]) is not None]
        if geoms:
            chosen.append(("geom", max(geoms, key=lambda g: float(model.geom_rbound[g]))))
    outside = set(int(b) for b in bodies) | {0}
    chosen += [("site", s) for s in range(model.nsite) if model.site_bodyid[s] in outside
               and model.site_rgba[s, 3] > 0 and model.site_group[s] <= 2
               and _surface(model, "site", s, model.site_size[s]) is not None]
    return chosen


def _check_objects_and_goals_are_drawn_where_the_simulator_puts_them(env, env_id):
    """Segmentation of each probe (a geom or a goal site) alone, rendered from the render copy, against the
    projection of the simulator's pose of it. Probes are drawn at least 1.5 cm across (a site is enlarged
    about its centre) so that each covers enough pixels for its centroid to be measured."""
    model, data = _sim(env)
    unwrapped = env.unwrapped
    geom_type, site_type = int(mujoco.mjtObj.mjOBJ_GEOM), int(mujoco.mjtObj.mjOBJ_SITE)
    checked, errors = 0, []
    renderer: SceneRenderer = unwrapped._renderer
    probe, gl = None, None
    for episode in (0, 1):
        env.reset(options={"episode": episode})
        if probe is None:
            probe = copy.copy(renderer.model)  # the render copy as this episode's reset left it
            probe.vis.global_.offwidth = probe.vis.global_.offheight = max(PROBE_PX, probe.vis.global_.offwidth)
            gl = mujoco.Renderer(probe, PROBE_PX, PROBE_PX)  # one GL context for both episodes
            gl.enable_segmentation_rendering()
        else:  # the arrays the reset may have edited, as the render copy holds them now
            for name in renderer._synced:
                np.copyto(getattr(probe, name), getattr(renderer.model, name))
        probe_data = mujoco.MjData(probe)
        probe_data.qpos[:] = data.qpos
        probe_data.mocap_pos[:] = data.mocap_pos
        probe_data.mocap_quat[:] = data.mocap_quat
        mujoco.mj_kinematics(probe, probe_data)
        mujoco.mj_camlight(probe, probe_data)
        truth_data = _truth(model, data)  # the simulator's own poses
        cam = renderer._cam_ids[0]
        option = mujoco.MjvOption()
        option.geomgroup[:] = 0
        option.geomgroup[5] = 1
        option.sitegroup[:] = 0
        option.sitegroup[5] = 1
        groups = probe.geom_group.copy(), probe.site_group.copy()
        try:
            for kind, i in _probes(model, unwrapped._object_bodies):
                probe.geom_group[:] = 0
                probe.site_group[:] = 0
                if kind == "geom":
                    probe.geom_group[i] = 5
                    probe.geom_rgba[i, 3] = 1.0
                    size = model.geom_size[i]
                    pos, mat = truth_data.geom_xpos[i], truth_data.geom_xmat[i].reshape(3, 3)
                else:
                    probe.site_group[i] = 5
                    probe.site_size[i] = size = np.maximum(model.site_size[i], 0.0075)
                    pos, mat = truth_data.site_xpos[i], truth_data.site_xmat[i].reshape(3, 3)
                gl.update_scene(probe_data, camera=cam, scene_option=option)
                seg = gl.render()
                objtype = geom_type if kind == "geom" else site_type
                rows, cols = np.nonzero((seg[..., 0] == i) & (seg[..., 1] == objtype))
                if len(rows) < 12 or rows.min() == 0 or cols.min() == 0 or rows.max() == PROBE_PX - 1 \
                        or cols.max() == PROBE_PX - 1:
                    continue  # too small to measure, or cut by the image border
                drawn = _hull_centroid(np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64))
                world = pos + _surface(model, kind, i, size) @ mat.T
                expected = _hull_centroid(_project(probe_data.cam_xpos[cam], probe_data.cam_xmat[cam].reshape(3, 3),
                                                   probe.cam_fovy[cam], world, PROBE_PX))
                err = float(np.linalg.norm(drawn - expected)) * 128 / PROBE_PX
                checked += 1
                if err > TOLERANCE_PX_AT_128:
                    name = (model.geom(i) if kind == "geom" else model.site(i)).name or str(i)
                    errors.append(f"{kind} {name} episode {episode}: drawn at {drawn.round(1)}, the simulator's "
                                  f"pose projects to {expected.round(1)} ({err:.1f} px at 128 px)")
        finally:
            probe.geom_group[:], probe.site_group[:] = groups
    gl.close()
    assert checked, f"{env_id}: nothing could be measured"
    assert not errors, f"{env_id}: " + "; ".join(errors)


@pytest.mark.parametrize("env_id", MW_TASKS)
def test_privileged_state_at_reset_is_the_simulators_current_state(make_env, env_id):
    """Some Meta-World tasks edit the model after their last forward pass at reset; the state the env reports
    must still be the current one (window-close reported its window 20 cm off until the first step)."""
    env = make_env(env_id, split="test", cameras=())
    model, data = _sim(env)
    for episode in range(3):
        _, info = env.reset(options={"episode": episode})
        fresh = mujoco.MjData(model)
        fresh.qpos[:], fresh.qvel[:] = data.qpos, data.qvel
        fresh.mocap_pos[:], fresh.mocap_quat[:] = data.mocap_pos, data.mocap_quat
        mujoco.mj_forward(model, fresh)
        sim = env.unwrapped._sim
        saved, sim.data = sim.data, fresh
        try:
            prev = sim._prev_obs.copy()
            expected = sim._get_obs()
            sim._prev_obs = prev
        finally:
            sim.data = saved
        np.testing.assert_allclose(info["privileged_state"][:18], expected[:18], atol=1e-9,
                                   err_msg=f"{env_id} episode {episode}: stale privileged state at reset")


@pytest.mark.parametrize("env_id", ["vp/metaworld-door-open-v3", "vp/metaworld-reach-v3", "vp/robosuite-Door"])
@pytest.mark.parametrize("split", ["camera", "lighting", "texture", "distractor"])
def test_perceptual_factors_edit_only_the_render_copy(make_env, env_id, split):
    """The sync runs from the simulation to the render copy only: under a perceptual split the simulation's
    model keeps every array it had under ``test``, and the render copy differs only in what factors edit."""
    from vp_envs.rendering import _EDITABLE

    ref = make_env(env_id, split="test")
    env = make_env(env_id, split=split)
    ref.reset(options={"episode": 1})
    env.reset(options={"episode": 1})
    (ref_model, _), (model, _) = _sim(ref), _sim(env)
    renderer = env.unwrapped._renderer
    for name in renderer._synced:
        np.testing.assert_array_equal(getattr(model, name), getattr(ref_model, name),
                                      err_msg=f"{split} changed the simulation's {name}")
        if name not in _EDITABLE:
            np.testing.assert_array_equal(getattr(renderer.model, name), getattr(model, name),
                                          err_msg=f"{split}: render copy's {name} left the simulation's")


@pytest.mark.parametrize("task", ["window-close-v3", "drawer-open-v3", "pick-place-v3"])
def test_episodes_stay_bit_identical_to_metaworlds_own(make_env, task):
    """Making the reset observation current must not touch the physics: the same seed and actions give the
    same joint positions, to the last bit, as Meta-World's env on its own."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = make_env(f"vp/metaworld-{task}", cameras=())
    raw = ALL_V3_ENVIRONMENTS[task]()
    raw._set_task_called, raw._freeze_rand_vec, raw.seeded_rand_vec = True, False, True
    env.reset(seed=5)
    raw.seed(5)
    raw.reset()
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        raw.step(action)
        env.step(action)
        np.testing.assert_array_equal(env.unwrapped._sim.data.qpos, raw.data.qpos)
    raw.close()
