"""Factors of variation: the building blocks of distribution-shift splits.

Each factor is a named function with parameters read from a split file (``vp_envs/splits/*.yaml``).
*Perceptual* factors edit a :class:`VisualScene` — a render-only copy of the MuJoCo model plus a list of
render-only geoms — so they change pixels and can never change dynamics or the initial state. Behavioural
factors (``object_position``) are interpreted by the suite at reset.

Parameter values follow one rule everywhere: a number is used as is, a list is a choice drawn per episode,
and ``{low: a, high: b}`` is a uniform draw per episode. Each factor draws from its own random stream,
seeded by the episode seed and the factor's name, so adding a factor to a split never changes the draws of
the others.

Adding a factor: write ``def my_factor(scene, params, rng)`` below, decorate it with ``@factor()``, and use
its name in a split file.
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import mujoco
import numpy as np


@dataclass
class VisualScene:
    """What perceptual factors may edit for one episode.

    Attributes:
        model: the render-only model copy (physics never reads it).
        geom_groups: geom ids by role: ``table``, ``floor``, ``background``, ``robot``, ``object``.
        object_bodies: body ids of the task's objects (each gets its own colour under ``object_color``).
        table_height: z of the table top, where cameras pivot and distractors stand.
        table_region: ((x_lo, x_hi), (y_lo, y_hi)) where distractors may stand.
        avoid_points: xy positions (objects, goal) distractors keep clear of.
        extra_geoms: render-only geoms added to every frame: dicts of type, size, pos, rgba.
        dirty_textures: ids of textures whose pixels a factor edited (the renderer re-uploads them).
    """

    model: mujoco.MjModel
    geom_groups: dict[str, np.ndarray]
    object_bodies: np.ndarray
    table_height: float
    table_region: tuple[tuple[float, float], tuple[float, float]]
    avoid_points: np.ndarray
    extra_geoms: list[dict[str, Any]] = field(default_factory=list)
    dirty_textures: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Factor:
    name: str
    perceptual: bool
    apply: Callable[[VisualScene, dict[str, Any], np.random.Generator], None] | None
    doc: str


FACTORS: dict[str, Factor] = {}


def factor(perceptual: bool = True):
    def register(fn):
        FACTORS[fn.__name__] = Factor(fn.__name__, perceptual, fn, (fn.__doc__ or "").strip())
        return fn

    return register


def sample(value: Any, rng: np.random.Generator) -> Any:
    """Draw a parameter: number as is, list -> choice, {low, high} -> uniform."""
    if isinstance(value, list):
        return value[int(rng.integers(len(value)))]
    if isinstance(value, dict) and set(value) == {"low", "high"}:
        return float(rng.uniform(value["low"], value["high"]))
    return value


def factor_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def apply_factors(scene: VisualScene, factors: dict[str, dict[str, Any]], seed: int) -> None:
    """Apply every perceptual factor of ``factors`` to ``scene`` for the episode with ``seed``."""
    for name in sorted(factors):
        spec = FACTORS[name]
        if spec.perceptual:
            spec.apply(scene, factors[name] or {}, factor_rng(seed, name))


# ----------------------------------------------------------------------------------------------- camera
def _axis_quat(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_axisAngle2Quat(q, np.asarray(axis, dtype=np.float64), angle_rad)
    return q


def _rotate_camera(model: mujoco.MjModel, i: int, pivot: np.ndarray, quat: np.ndarray) -> None:
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, quat)
    model.cam_pos[i] = pivot + rot.reshape(3, 3) @ (model.cam_pos[i] - pivot)
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, quat, model.cam_quat[i])
    model.cam_quat[i] = out


def _static_cameras(model: mujoco.MjModel) -> list[int]:
    # Only cameras fixed in the world move; cameras on the robot (wrist, gripper) move with it.
    return [i for i in range(model.ncam) if model.cam_bodyid[i] == 0 and model.cam_mode[i] == 0]


@factor()
def camera_pose(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Orbit each world-fixed camera about the point it looks at on the table.

    Params: ``yaw_deg`` (about the vertical), ``pitch_deg`` (about the camera's horizontal axis),
    ``distance_scale`` (1 = unchanged).
    """
    m = scene.model
    yaw = np.deg2rad(float(sample(params.get("yaw_deg", 0.0), rng)))
    pitch = np.deg2rad(float(sample(params.get("pitch_deg", 0.0), rng)))
    scale = float(sample(params.get("distance_scale", 1.0), rng))
    for i in _static_cameras(m):
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, m.cam_quat[i])
        forward = -rot.reshape(3, 3)[:, 2]
        t = (scene.table_height - m.cam_pos[i][2]) / forward[2] if forward[2] < -1e-3 else 1.0
        pivot = m.cam_pos[i] + t * forward
        _rotate_camera(m, i, pivot, _axis_quat(np.array([0.0, 0.0, 1.0]), yaw))
        mujoco.mju_quat2Mat(rot, m.cam_quat[i])
        _rotate_camera(m, i, pivot, _axis_quat(rot.reshape(3, 3)[:, 0], pitch))
        m.cam_pos[i] = pivot + scale * (m.cam_pos[i] - pivot)


@factor()
def camera_fov(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Scale the vertical field of view of world-fixed cameras. Params: ``scale``."""
    scale = float(sample(params.get("scale", 1.0), rng))
    for i in _static_cameras(scene.model):
        scene.model.cam_fovy[i] = float(np.clip(scene.model.cam_fovy[i] * scale, 5.0, 150.0))


# ---------------------------------------------------------------------------------------------- lighting
@factor()
def light_intensity(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Scale every light (diffuse, ambient, specular) and the headlight. Params: ``scale``."""
    m = scene.model
    s = float(sample(params.get("scale", 1.0), rng))
    m.light_diffuse[:] *= s
    m.light_ambient[:] *= s
    m.light_specular[:] *= s
    m.vis.headlight.diffuse[:] = np.asarray(m.vis.headlight.diffuse) * s
    m.vis.headlight.ambient[:] = np.asarray(m.vis.headlight.ambient) * s


@factor()
def light_color(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Tint every light with one random hue. Params: ``saturation`` (0 = white)."""
    sat = float(sample(params.get("saturation", 0.2), rng))
    tint = np.array(colorsys.hsv_to_rgb(rng.uniform(), sat, 1.0))
    scene.model.light_diffuse[:] *= tint
    scene.model.vis.headlight.diffuse[:] = np.asarray(scene.model.vis.headlight.diffuse) * tint


@factor()
def light_direction(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Move each light horizontally by ``offset_m`` in a random direction, still aimed at the same point."""
    m = scene.model
    offset = float(sample(params.get("offset_m", 0.0), rng))
    for i in range(m.nlight):
        angle = rng.uniform(0, 2 * np.pi)
        old = m.light_pos[i].copy()
        drop = max(old[2] - scene.table_height, 0.1)
        target = old + m.light_dir[i] * drop / max(-m.light_dir[i][2], 1e-3)
        m.light_pos[i] = old + offset * np.array([np.cos(angle), np.sin(angle), 0.0])
        direction = target - m.light_pos[i]
        m.light_dir[i] = direction / np.linalg.norm(direction)


# ------------------------------------------------------------------------------------- colours, textures
def _random_rgb(params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    hue = rng.uniform()
    sat = float(sample(params.get("saturation", {"low": 0.2, "high": 0.9}), rng))
    val = float(sample(params.get("value", {"low": 0.25, "high": 0.95}), rng))
    return np.array(colorsys.hsv_to_rgb(hue, sat, val))


def _paint(model: mujoco.MjModel, geoms: np.ndarray, rgb: np.ndarray) -> None:
    # Drop the material so the flat colour shows (a textured material would only tint); keep alpha, so
    # geoms that are invisible by design stay invisible.
    if len(geoms):
        model.geom_matid[geoms] = -1
        model.geom_rgba[geoms, :3] = rgb


def _colour_factor(role: str):
    def fn(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
        _paint(scene.model, scene.geom_groups.get(role, np.zeros(0, int)), _random_rgb(params, rng))

    fn.__name__ = f"{role}_color"
    fn.__doc__ = f"Paint the {role} geoms one random flat colour. Params: ``saturation``, ``value``."
    return factor()(fn)


table_color = _colour_factor("table")
floor_color = _colour_factor("floor")
robot_color = _colour_factor("robot")


@factor()
def background_color(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Recolour the sky box (keeping its shading) and any ``background`` geoms one random colour.

    Params: ``saturation``, ``value``.
    """
    m = scene.model
    rgb = _random_rgb(params, rng)
    _paint(m, scene.geom_groups.get("background", np.zeros(0, int)), rgb)
    for t in range(m.ntex):
        if m.tex_type[t] != mujoco.mjtTexture.mjTEXTURE_SKYBOX or m.tex_nchannel[t] < 3:
            continue
        n, c = int(m.tex_width[t] * m.tex_height[t]), int(m.tex_nchannel[t])
        start = int(m.tex_adr[t])
        texels = m.tex_data[start:start + n * c].reshape(n, c).astype(np.float32)
        shade = texels[:, :3].mean(axis=1, keepdims=True) / 255.0
        texels[:, :3] = np.clip(255.0 * (0.35 + 0.65 * shade) * rgb, 0, 255)
        m.tex_data[start:start + n * c] = texels.astype(np.uint8).reshape(-1)
        scene.dirty_textures.add(t)


@factor()
def object_color(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Paint each task object (each body) its own random flat colour. Params: ``saturation``, ``value``."""
    geoms = scene.geom_groups.get("object", np.zeros(0, int))
    bodies = scene.model.geom_bodyid[geoms]
    for body in np.unique(bodies):
        _paint(scene.model, geoms[bodies == body], _random_rgb(params, rng))


# ---------------------------------------------------------------------------------------------- distractors
_SHAPES = (mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CYLINDER)


@factor()
def distractors(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Stand ``count`` render-only objects on the table, ``clearance_m`` away from the task's objects.

    Params: ``count``, ``size_m`` (half-size), ``clearance_m``. They are drawn into every frame but are not
    part of the simulation.
    """
    count = int(sample(params.get("count", 3), rng))
    clearance = float(sample(params.get("clearance_m", 0.1), rng))
    (x_lo, x_hi), (y_lo, y_hi) = scene.table_region
    placed: list[np.ndarray] = [p[:2] for p in scene.avoid_points]
    for _ in range(count):
        size = float(sample(params.get("size_m", {"low": 0.02, "high": 0.045}), rng))
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        rgb = _random_rgb({}, rng)
        for _attempt in range(50):
            xy = np.array([rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi)])
            if all(np.linalg.norm(xy - p) >= clearance for p in placed):
                break
        placed.append(xy)
        half_height = size * (1.5 if shape == mujoco.mjtGeom.mjGEOM_CYLINDER else 1.0)
        scene.extra_geoms.append(
            dict(
                type=int(shape),
                size=np.array([size, size, half_height]),
                pos=np.array([xy[0], xy[1], scene.table_height + half_height]),
                rgba=np.append(rgb, 1.0).astype(np.float32),
            )
        )


# ------------------------------------------------------------------------------------ behavioural factors
@factor(perceptual=False)
def object_position(scene: VisualScene, params: dict[str, Any], rng: np.random.Generator) -> None:
    """Widen the object/goal position ranges by ``margin_m`` and reject draws inside the training ranges.

    Interpreted by the suite at reset (it changes the initial state), not here.
    """
