"""Is a task observable from what the policy sees? Check it before training on it.

A policy that reads pixels can only act on what the pixels show. For every task of a protocol this module
takes the task-relevant points of the privileged state (Meta-World: the object, a second object, the goal;
robosuite: every object position), over N ``test`` episodes, and measures them through the protocol's own
camera and image size:

- ``world_span_cm``: how far the point moves over the episodes (largest pairwise distance);
- ``px_span``: how far its projection moves in the image (largest pairwise distance, pixels);
- ``drawn_frac``: in how many episodes the pixels around its projection show the task's objects
  (MuJoCo segmentation of the first frame: not the robot, not the table or the floor, not off-screen);
- ``implied_by``: a goal that is always the same offset from an object (door-open's handle target) needs no
  marker of its own: it is read from the object.

A point that is randomised (moves more than 0.5 cm) must move at least ``--min-px`` pixels (8 by default,
more than a random crop's shift) and be drawn in at least 80% of episodes, unless it is implied by another
point. Otherwise the task is reported as not observable and the command exits 1.

    python -m vp_envs.observability --protocol metaworld-lite-v2 --out results/observability/metaworld-lite-v2.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RANDOMISED_CM = 0.5   # a point that moves less than this over the episodes is fixed
MIN_PX = 8.0          # a randomised point must move at least this far in the image
MIN_DRAWN = 0.8       # ... and be drawn in at least this share of the episodes
NEIGHBOURHOOD = 1     # pixels around the projection that may show the point (a 3x3 patch)


@dataclass
class PointReport:
    """One task-relevant point of one task, measured over N episodes."""

    protocol: str
    task: str
    point: str
    camera: str
    image_size: int
    episodes: int
    world_span_cm: float
    px_span: float
    px_min_col: float
    px_max_col: float
    px_min_row: float
    px_max_row: float
    drawn_frac: float
    implied_by: str
    status: str

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "fixed", "implied")


def task_points(suite: str, task: str, privileged: np.ndarray) -> dict[str, np.ndarray]:
    """Task-relevant world points (name -> xyz) read from an episode's privileged state."""
    priv = np.asarray(privileged, dtype=np.float64)
    if suite == "metaworld":
        from vp_envs.metaworld_env import privileged_layout as layout

        f = layout(task)
        points = {"object": priv[f["object_pos"]], "goal": priv[f["goal_pos"]]}
        if np.any(priv[f["object2_pos"]] != 0):  # Meta-World pads a missing second object with zeros
            points["object2"] = priv[f["object2_pos"]]
        return points
    from vp_envs.robosuite_env import privileged_layout

    return {name[:-4]: priv[s] for name, s in privileged_layout(task).items()
            if name.endswith("_pos") and name != "eef_pos"}


def project(cam_pos: np.ndarray, cam_mat: np.ndarray, fovy_deg: float, points: np.ndarray,
            width: int, height: int) -> np.ndarray:
    """Pixel (column, row) of world points (N, 3) in a MuJoCo camera image; columns/rows grow right/down."""
    local = (np.asarray(points, dtype=np.float64).reshape(-1, 3) - cam_pos) @ cam_mat  # x right, y up, -z ahead
    f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
    depth = -local[:, 2]
    return np.stack([width / 2 + f * local[:, 0] / depth, height / 2 - f * local[:, 1] / depth], axis=1)


def span(points: np.ndarray) -> float:
    """Largest pairwise distance between points (N, D): how far a point moves over the episodes."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return 0.0
    diff = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((diff ** 2).sum(-1)).max())


class _Segmenter:
    """First-frame segmentation through the env's render copy (its camera, size and this episode's factors)."""

    def __init__(self, env):
        import mujoco

        self.env = env.unwrapped
        renderer = self.env._renderer
        self.cam = renderer._cam_ids[0]
        self.width, self.height = renderer.width, renderer.height
        self.gl = mujoco.Renderer(renderer.model, self.height, self.width)
        self.gl.enable_segmentation_rendering()
        self.geom_type = int(mujoco.mjtObj.mjOBJ_GEOM)
        self.site_type = int(mujoco.mjtObj.mjOBJ_SITE)

    def camera(self):
        data = self.env._renderer._data  # the render copy's kinematics, updated by the last render
        model = self.env._renderer.model
        return data.cam_xpos[self.cam].copy(), data.cam_xmat[self.cam].reshape(3, 3).copy(), float(model.cam_fovy[self.cam])

    def object_mask(self) -> np.ndarray:
        """Boolean (H, W): pixels that show a task object's geom or a non-robot site."""
        renderer = self.env._renderer
        self.gl.update_scene(renderer._data, camera=self.cam, scene_option=renderer._option)
        seg = self.gl.render()
        ids, types = seg[..., 0], seg[..., 1]
        objects = np.zeros(renderer.model.ngeom + 1, dtype=bool)
        objects[self.env._geom_groups["object"]] = True
        geom_hit = (types == self.geom_type) & (ids >= 0)
        mask = np.zeros(ids.shape, dtype=bool)
        mask[geom_hit] = objects[ids[geom_hit]]
        if renderer.model.nsite:
            robot_bodies = set(np.unique(renderer.model.geom_bodyid[self.env._geom_groups["robot"]]).tolist())
            site_ok = np.array([renderer.model.site_bodyid[s] not in robot_bodies
                                for s in range(renderer.model.nsite)] + [False])
            site_hit = (types == self.site_type) & (ids >= 0)
            mask[site_hit] = site_ok[ids[site_hit]]
        return mask

    def close(self):
        self.gl.close()


def _drawn(mask: np.ndarray, px: np.ndarray) -> bool:
    h, w = mask.shape
    col, row = int(np.floor(px[0])), int(np.floor(px[1]))
    if not (0 <= col < w and 0 <= row < h):
        return False
    r = NEIGHBOURHOOD
    return bool(mask[max(0, row - r):row + r + 1, max(0, col - r):col + r + 1].any())


def check_task(suite: str, task: str, *, camera: str, image_size: int, episodes: int = 20,
               split: str = "test", protocol: str = "", min_px: float = MIN_PX) -> list[PointReport]:
    """Measure every task-relevant point of ``task`` over ``episodes`` episodes of ``split``."""
    import vp_envs

    env = vp_envs.make(f"{vp_envs.NAMESPACE}/{suite}-{task}", split=split, cameras=(camera,),
                       width=image_size, height=image_size)
    seg = None
    worlds: dict[str, list[np.ndarray]] = {}
    pixels: dict[str, list[np.ndarray]] = {}
    drawn: dict[str, list[bool]] = {}
    try:
        for i in range(episodes):
            _, info = env.reset(options={"episode": i})
            seg = seg or _Segmenter(env)
            cam_pos, cam_mat, fovy = seg.camera()
            mask = seg.object_mask()
            for name, xyz in task_points(suite, task, info["privileged_state"]).items():
                px = project(cam_pos, cam_mat, fovy, xyz, image_size, image_size)[0]
                worlds.setdefault(name, []).append(np.array(xyz))
                pixels.setdefault(name, []).append(px)
                drawn.setdefault(name, []).append(_drawn(mask, px))
    finally:
        if seg is not None:
            seg.close()
        env.close()

    reports = []
    for name in worlds:
        world, px = np.array(worlds[name]), np.array(pixels[name])
        world_span = 100 * span(world)
        implied = ""
        if world_span >= RANDOMISED_CM and name.startswith("goal"):  # objects must be seen themselves
            for other in worlds:
                if other != name and 100 * span(world - np.array(worlds[other])) < RANDOMISED_CM \
                        and 100 * span(np.array(worlds[other])) >= RANDOMISED_CM:
                    implied = other
                    break
        frac = float(np.mean(drawn[name]))
        px_span = span(px)
        if world_span < RANDOMISED_CM:
            status = "fixed"
        elif implied:
            status = "implied"
        elif px_span < min_px:
            status = "too_small"
        elif frac < MIN_DRAWN:
            status = "hidden"
        else:
            status = "ok"
        reports.append(PointReport(protocol, task, name, camera, image_size, episodes, round(world_span, 2),
                                   round(px_span, 2), *(round(float(v), 1) for v in
                                                        (px[:, 0].min(), px[:, 0].max(), px[:, 1].min(), px[:, 1].max())),
                                   round(frac, 2), implied, status))
    return reports


def check_protocol(name_or_path: str, episodes: int = 20, min_px: float = MIN_PX,
                   tasks: list[str] | None = None) -> list[PointReport]:
    """:func:`check_task` for every task of a protocol, through its first camera and its image size."""
    from eval.protocol import load_protocol

    proto = load_protocol(name_or_path)
    if not proto.cameras:
        raise ValueError(f"protocol {proto.name!r} has no camera: nothing to observe")
    if proto.image_size[0] != proto.image_size[1]:
        raise ValueError("the observability check supports square images only")
    reports = []
    for task in tasks or proto.tasks:
        reports += check_task(proto.suite, task, camera=proto.cameras[0], image_size=proto.image_size[0],
                              episodes=episodes, protocol=f"{proto.name}", min_px=min_px)
    return reports


def to_csv(reports: list[PointReport]) -> str:
    buf = io.StringIO()
    fields = list(PointReport.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in reports:
        writer.writerow(asdict(r))
    return buf.getvalue()


def format_table(reports: list[PointReport]) -> str:
    lines = [f"{'task':<26} {'point':<9} {'moves cm':>8} {'moves px':>8} {'drawn':>6}  status"]
    for r in reports:
        status = r.status + (f" (by {r.implied_by})" if r.implied_by else "")
        lines.append(f"{r.task:<26} {r.point:<9} {r.world_span_cm:>8.1f} {r.px_span:>8.1f} {r.drawn_frac:>6.2f}  {status}")
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vp_envs.observability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", required=True, help="a shipped protocol name or a protocol .yaml path")
    parser.add_argument("--episodes", type=int, default=20, help="test episodes per task (default 20)")
    parser.add_argument("--min-px", type=float, default=MIN_PX, help="least image motion of a randomised point")
    parser.add_argument("--tasks", nargs="*", help="only these tasks of the protocol")
    parser.add_argument("--out", type=Path, help="write the per-point table as CSV here")
    args = parser.parse_args(argv)
    try:
        reports = check_protocol(args.protocol, args.episodes, args.min_px, args.tasks)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(reports))
    if args.out:
        _write_atomic(args.out, to_csv(reports))
        print(f"wrote {args.out}")
    bad = sorted({r.task for r in reports if not r.ok})
    if bad:
        print(f"not observable at this camera and size: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
