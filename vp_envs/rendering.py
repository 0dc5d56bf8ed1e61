"""Fast offscreen rendering of several cameras from a render-only copy of a MuJoCo model.

Why not the simulators' own renderers: MuJoCo's default shadows (4096-texel shadow maps) and 4x MSAA
dominate the cost of small frames — about 70-90 ms for a 64x64 frame on a 2-core machine with Mesa's
software EGL, against about 12 ms with both off. Policies at 64-128 px gain nothing from either, so both
are off by default and can be turned back on through :class:`RenderOptions`.

The renderer keeps its own copy of the model, so the perceptual factors of a split (camera pose, lights,
colours) edit what is drawn without any path to the physics. Simulators also edit their model at reset
(Meta-World places drawers, doors, buttons and goal markers by writing ``model.body_pos`` /
``model.site_pos``; robosuite's Door moves its frame), so at every reset :meth:`SceneRenderer.reset_visuals`
copies every model array the simulation may edit from the simulation's model before the split's factors
are applied: the frame shows where the episode put things, and the factors still never reach the physics.
Cameras whose up-vector points down in the world (Meta-World's corner cameras) are rolled 180 degrees about
their optical axis, so every image is upright without a flip in the hot path.

Building a GL context with MuJoCo's render context (uploading the model's textures and meshes) costs about as
much as 40 small frames, so a closed renderer gives its context to a per-process pool (:data:`GL_POOL_SIZE`),
from which the next renderer of a model with the same assets and image size takes it.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")


def _load_triton_before_mesa() -> None:
    """Load Triton's library now, where it is installed, before a GL context can load Mesa.

    Mesa's software EGL (llvmpipe) and Triton (installed with torch's wheels) each link their own LLVM, and
    loading Triton's after Mesa's kills the process with a segfault inside ``libtriton.so`` (measured with
    torch 2.13 / Triton 3.8: render a frame, then ``import torch._dynamo``, which diffusers and torch.compile
    import). Loaded first, both coexist. torch imports Triton lazily, so a process that renders and then
    loads Diffusion Policy or Video Policy would crash: this costs about 0.25 s once per process instead
    (``tests/test_rendering.py::test_torch_dynamo_imports_after_a_frame_is_rendered``).

    Where Mesa's LLVM is already loaded (the process rendered with MuJoCo before it first used vp_envs),
    loading Triton now would crash at once: it is skipped with a warning instead."""
    import ctypes
    import importlib.util

    try:
        spec = importlib.util.find_spec("triton")
    except (ImportError, ValueError):
        return
    if spec is None or spec.origin is None:
        return
    lib = os.path.join(os.path.dirname(spec.origin), "_C", "libtriton.so")
    loaded = _loaded_libraries()
    if any("libtriton" in name for name in loaded):
        return
    if any("libLLVM" in name for name in loaded):
        import warnings

        warnings.warn(
            "this process rendered with MuJoCo (Mesa's LLVM is loaded) before it imported vp_envs, so Triton's "
            "library cannot be loaded first; importing torch._dynamo later (Diffusion Policy, Video Policy, "
            "diffusers) may crash the process. Import vp_envs before rendering to avoid it.", RuntimeWarning,
            stacklevel=2)
        return
    if os.path.exists(lib):
        try:
            ctypes.CDLL(lib)
        except OSError:
            pass  # a Triton that cannot load here cannot crash a later import either


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process (Linux; empty elsewhere)."""
    try:
        with open("/proc/self/maps") as maps:
            return [line.split()[-1] for line in maps if ".so" in line]
    except OSError:
        return []


_load_triton_before_mesa()

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from vp_envs.factors import VisualScene  # noqa: E402

# Model arrays that perceptual factors may edit (reset_visuals restores them, with the rest, from the simulation).
_EDITABLE = (
    "cam_pos", "cam_quat", "cam_fovy", "light_pos", "light_dir", "light_diffuse", "light_ambient",
    "light_specular", "geom_rgba", "geom_matid", "mat_rgba",
)
# Compiled assets the render copy owns and never takes from the simulation: mesh and texture data (the
# renderer may simplify meshes, factors repaint textures; both are uploaded to the GL context once) and the
# collision structures built from them. Copying them every reset would cost about 2 ms for nothing: a
# simulator that edited them at reset would also need a re-upload. tests/test_render_sync.py checks that no
# task of either suite edits them.
RENDER_OWNED_PREFIXES = ("mesh_", "tex_", "bvh_", "oct_", "flex_", "skin_", "hfield_")


def synced_fields(model: mujoco.MjModel) -> tuple[str, ...]:
    """Names of the model arrays a render copy takes from the simulation's model at every reset.

    Every array of ``MjModel`` (positions, orientations and sizes of bodies, geoms, sites, cameras, lights;
    colours; and the rest) except the compiled assets named by :data:`RENDER_OWNED_PREFIXES`.
    """
    names = []
    for name in dir(model):
        if name.startswith("_") or name.startswith(RENDER_OWNED_PREFIXES):
            continue
        try:
            value = getattr(model, name)
        except Exception:  # noqa: BLE001 - properties that are not arrays may refuse on some builds
            continue
        if isinstance(value, np.ndarray):
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class RenderOptions:
    """Costly rendering features, off by default (see the module docstring for measured costs).

    Attributes:
        shadows: shadow mapping from every light that casts shadows.
        msaa_samples: multi-sample anti-aliasing samples (0 = off; MuJoCo's default is 4).
        reflections: mirror reflections from reflective materials (the Meta-World floor).
        skybox: draw the skybox texture, if the model has one.
    """

    shadows: bool = False
    msaa_samples: int = 0
    reflections: bool = False
    skybox: bool = True

    def __post_init__(self):
        if self.msaa_samples not in (0, 2, 4, 8, 16):
            raise ValueError(f"msaa_samples must be one of 0, 2, 4, 8, 16; got {self.msaa_samples!r}")


_ROLL = np.array([0.0, 0.0, 0.0, 1.0])  # 180 degrees about a camera's own z (optical) axis


def upright_cameras(model: mujoco.MjModel, data: mujoco.MjData) -> list[int]:
    """Roll world-fixed cameras whose image 'up' points below the horizon by 180 degrees (in place); returns
    the ids of the cameras it rolled.

    Cameras on moving bodies (wrist, gripper) keep their modelled orientation: their 'up' depends on the
    robot's pose, not on a mounting mistake.
    """
    mujoco.mj_forward(model, data)
    rolled = []
    for i in range(model.ncam):
        if model.cam_bodyid[i] != 0:
            continue
        up = data.cam_xmat[i].reshape(3, 3)[:, 1]
        if up[2] < 0:
            out = np.zeros(4)
            mujoco.mju_mulQuat(out, model.cam_quat[i], _ROLL)
            model.cam_quat[i] = out
            rolled.append(i)
    return rolled


_LIVE: "weakref.WeakSet[SceneRenderer]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False

#: Idle render contexts a process keeps for reuse (``VP_GL_POOL_SIZE``; 0 turns reuse off). Building one
#: (MuJoCo uploads the model's textures and meshes; Mesa makes their mipmaps in software) takes about 0.5-0.7 s
#: for a Meta-World model, against about 15 ms to draw a 64 px frame; a closed env's context serves the next
#: env whose model has the same assets at the same size, so re-making an env of a task (an evaluation runner
#: going from split to split, a test suite) does not pay it again. Each idle context holds its textures in
#: memory (about 10 MB for a Meta-World model).
GL_POOL_SIZE = int(os.environ.get("VP_GL_POOL_SIZE", "8"))
# Model arrays MuJoCo's render context is built from (mjr_makeContext): contexts are shared only between
# models whose arrays under these prefixes, offscreen buffer and quality settings are equal.
_UPLOADED_PREFIXES = ("mesh_", "tex_", "flex_", "skin_", "hfield_")
_POOL: "OrderedDict[tuple, list[_Context]]" = OrderedDict()
_POOL_LOCK = threading.Lock()


class _Context:
    """A GL context and MuJoCo's render context for one model's assets (what ``mujoco.Renderer`` builds)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int):
        from mujoco import gl_context

        self.gl = gl_context.GLContext(width, height)
        self.gl.make_current()
        self.mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self.mjr)
        self.mjr.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR

    def free(self) -> None:
        gl, mjr, self.gl, self.mjr = self.gl, self.mjr, None, None
        try:
            if gl is not None:
                gl.free()
            if mjr is not None:
                mjr.free()
        except Exception:  # noqa: BLE001 - EGL already terminated (at exit): nothing is left to free
            if gl is not None:
                gl._context = None  # or its __del__ tries again and prints the same error


def _context_key(model: mujoco.MjModel, textures: np.ndarray, width: int, height: int) -> tuple:
    """What a render context depends on: the uploaded assets (``textures`` stands for ``model.tex_data``, which
    factors edit), the offscreen buffer and quality settings, the image size, and the thread (a GL context is
    made current in one thread at a time)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(dir(model)):
        if not name.startswith(_UPLOADED_PREFIXES):
            continue
        value = textures if name == "tex_data" else getattr(model, name, None)
        if isinstance(value, np.ndarray):
            digest.update(f"{name}{value.shape}{value.dtype}".encode())
            digest.update(np.ascontiguousarray(value).data)
    quality, buffer = model.vis.quality, model.vis.global_
    return (digest.hexdigest(), width, height, buffer.offwidth, buffer.offheight, quality.offsamples,
            quality.shadowsize, quality.numslices, quality.numstacks, quality.numquads, threading.get_ident())


def _take_context(key: tuple) -> "_Context | None":
    if GL_POOL_SIZE <= 0:
        return None
    with _POOL_LOCK:
        idle = _POOL.get(key)
        if not idle:
            return None
        ctx = idle.pop()
        if not idle:
            del _POOL[key]
        return ctx


def _give_context(key: tuple, ctx: _Context) -> None:
    evicted = []
    with _POOL_LOCK:
        _POOL.setdefault(key, []).append(ctx)
        _POOL.move_to_end(key)
        while sum(len(v) for v in _POOL.values()) > GL_POOL_SIZE:
            oldest = next(iter(_POOL))
            evicted.append(_POOL[oldest].pop(0))
            if not _POOL[oldest]:
                del _POOL[oldest]
    for old in evicted:
        old.free()


def _empty_pool() -> list:
    """Take every idle context out of the pool."""
    idle = [ctx for contexts in _POOL.values() for ctx in contexts]
    _POOL.clear()
    return idle


def _free_pool() -> None:
    with _POOL_LOCK:
        idle = _empty_pool()
    for ctx in idle:
        ctx.free()


def _close_all() -> None:
    # Free GL contexts while EGL is still initialised; freeing them from __del__ at shutdown raises.
    for renderer in list(_LIVE):
        try:
            renderer.close()
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
    try:
        _free_pool()
    except Exception:  # noqa: BLE001 - shutting down anyway
        pass


_FORKED_AFTER_GL = False
_ORPHANS: list = []


def _forget_gl_after_fork() -> None:
    # Mesa's EGL state does not survive fork: a child of a process that has rendered hangs on its first
    # context. Keep the parent's renderers alive but unused (freeing them would touch the parent's
    # display) and make the child's first render fail with a clear message instead of hanging.
    global _FORKED_AFTER_GL, _POOL_LOCK
    _POOL_LOCK = threading.Lock()  # a thread of the parent may have held it at the fork
    live = [r for r in list(_LIVE) if r._renderer is not None]
    idle = _empty_pool()
    _ORPHANS.extend(idle)
    if live or idle:
        _FORKED_AFTER_GL = True
        for renderer in live:
            _ORPHANS.append(renderer._renderer)
            renderer._renderer = None


os.register_at_fork(after_in_child=_forget_gl_after_fork)


def _register_close_at_exit() -> None:
    # MuJoCo registers eglTerminate at exit when it creates its first context, and robosuite's own EGL
    # binding when it makes its first one (its stock renderer): registering again after every context we
    # build makes ours run before any of them (atexit is last-in, first-out).
    global _ATEXIT_REGISTERED
    if _ATEXIT_REGISTERED:
        atexit.unregister(_close_all)
    atexit.register(_close_all)
    _ATEXIT_REGISTERED = True


class SceneRenderer:
    """Renders named cameras of a simulation at a fixed size, with per-episode visual factors.

    Args:
        model, data: the simulation's model and data (only read).
        cameras: camera names to render, in order.
        width, height: image size in pixels.
        options: :class:`RenderOptions`.
        geomgroups: geom groups to draw (default: MuJoCo's, groups 0-2); robosuite draws only group 1.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, cameras: tuple[str, ...],
                 width: int, height: int, options: RenderOptions = RenderOptions(),
                 geomgroups: tuple[int, ...] | None = None):
        names = [model.camera(i).name for i in range(model.ncam)]
        for cam in cameras:
            if cam not in names:
                raise ValueError(f"unknown camera {cam!r}; this model has: {', '.join(names)}")
        self.cameras = tuple(cameras)
        self.model = copy.copy(model)  # render-only copy: factors edit this, physics never reads it
        self.model.vis.quality.offsamples = options.msaa_samples
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
        # Cameras and lights are posed from MjData (cam_xpos, light_xpos), not from the model, so the
        # renderer keeps its own data: each frame copies the configuration and re-runs kinematics.
        self._data = mujoco.MjData(self.model)
        self._synced = synced_fields(self.model)
        self._rolled = upright_cameras(self.model, self._data)  # re-applied after every sync
        self._headlight = (np.array(self.model.vis.headlight.diffuse), np.array(self.model.vis.headlight.ambient))
        self.width, self.height, self.options = width, height, options
        # The GL context is made (or taken from the pool of idle ones) on first use, not here: a process that
        # only builds envs (as AsyncVectorEnv's parent does for its spaces) must not hold EGL state when it
        # forks workers.
        self._renderer: _Context | None = None
        self._context_key: tuple | None = None
        self._scene: mujoco.MjvScene | None = None
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._cam_ids = [names.index(c) for c in cameras]
        self._cams = []
        for cam_id in self._cam_ids:
            cam = mujoco.MjvCamera()
            cam.type, cam.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, cam_id
            self._cams.append(cam)
        self._option = mujoco.MjvOption()
        if geomgroups is not None:
            self._option.geomgroup[:] = 0
            for g in geomgroups:
                self._option.geomgroup[g] = 1
        self._extra: list[dict] = []
        self._edited_textures: set[int] = set()  # differ from the pristine model until reset_visuals
        self._pristine_tex = self.model.tex_data.copy()
        _LIVE.add(self)

    def _gl(self) -> _Context:
        if self._renderer is None:
            if _FORKED_AFTER_GL:
                raise RuntimeError(
                    "this process was forked from one that had already rendered with EGL, which Mesa cannot "
                    "continue in a child; start workers with gymnasium.vector.AsyncVectorEnv(..., "
                    "context='spawn') (or 'forkserver'), or create the vector env before rendering")
            if self._context_key is None:
                self._context_key = _context_key(self.model, self._pristine_tex, self.width, self.height)
            ctx = _take_context(self._context_key)
            if ctx is None:
                ctx = _Context(self.model, self.width, self.height)  # uploads the textures as they are now
                self._renderer = ctx
                _register_close_at_exit()
            else:  # an idle context holds the pristine textures: upload what factors have edited since
                self._renderer = ctx
                self._upload_textures(self._edited_textures)
        if self._scene is None:
            self._scene = mujoco.MjvScene(self.model, maxgeom=10000)  # as mujoco.Renderer makes it
            flags = self._scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = self.options.shadows
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = self.options.reflections
            flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = self.options.skybox
        return self._renderer

    def reset_visuals(self, model: mujoco.MjModel) -> None:
        """Start an episode's visuals from the simulation's ``model`` as it is now, with no perceptual factor.

        Call after the simulation's reset, before the split's factors are applied: every array of
        :func:`synced_fields` is copied from ``model`` (so bodies, sites and goal markers the task placed at
        reset are drawn where the physics has them), then the upright roll of the world-fixed cameras is
        applied again and the headlight and any repainted texture are restored.
        """
        dst = self.model
        for key in self._synced:
            np.copyto(getattr(dst, key), getattr(model, key))
        for i in self._rolled:
            out = np.zeros(4)
            mujoco.mju_mulQuat(out, dst.cam_quat[i], _ROLL)
            dst.cam_quat[i] = out
        self.model.vis.headlight.diffuse[:] = self._headlight[0]
        self.model.vis.headlight.ambient[:] = self._headlight[1]
        self._extra = []
        if self._edited_textures:
            self.model.tex_data[:] = self._pristine_tex
            self._upload_textures(self._edited_textures)
            self._edited_textures = set()

    def commit(self, scene: VisualScene) -> None:
        """Make the factors applied to ``scene`` visible: render-only geoms and edited textures."""
        self._extra = list(scene.extra_geoms)
        if scene.dirty_textures:
            self._upload_textures(scene.dirty_textures)
            self._edited_textures |= scene.dirty_textures

    def _upload_textures(self, textures: set[int]) -> None:
        if self._renderer is None or not textures:
            return  # a context, when made, uploads the model's textures as they are then
        self._renderer.gl.make_current()
        for t in sorted(textures):
            mujoco.mjr_uploadTexture(self.model, self._renderer.mjr, t)

    def scene(self, geom_groups, object_bodies, table_height, table_region, avoid_points) -> VisualScene:
        """A :class:`VisualScene` over this renderer's model for factors to edit."""
        return VisualScene(self.model, geom_groups, object_bodies, table_height, table_region,
                           np.asarray(avoid_points, dtype=np.float64).reshape(-1, 3))

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """One uint8 (H, W, 3) image per camera, upright, of the configuration in ``data``."""
        mine = self._data
        mine.qpos[:] = data.qpos
        mine.mocap_pos[:] = data.mocap_pos
        mine.mocap_quat[:] = data.mocap_quat
        mujoco.mj_kinematics(self.model, mine)
        mujoco.mj_camlight(self.model, mine)
        ctx = self._gl()
        ctx.gl.make_current()
        scene, rect = self._scene, self._rect
        frames = {}
        for name, cam in zip(self.cameras, self._cams):
            mujoco.mjv_updateScene(self.model, mine, self._option, None, cam, mujoco.mjtCatBit.mjCAT_ALL.value,
                                   scene)
            if self._extra:
                self._add_extra(scene)
            mujoco.mjr_render(rect, scene, ctx.mjr)
            out = np.empty((self.height, self.width, 3), dtype=np.uint8)
            mujoco.mjr_readPixels(out, None, rect, ctx.mjr)
            out[:] = np.flipud(out)  # OpenGL's rows run bottom-up
            frames[name] = out
        return frames

    def _add_extra(self, scene: mujoco.MjvScene) -> None:
        eye = np.eye(3).flatten()
        for g in self._extra:
            if scene.ngeom >= scene.maxgeom:
                break
            mujoco.mjv_initGeom(scene.geoms[scene.ngeom], g["type"], g["size"], g["pos"], eye, g["rgba"])
            scene.ngeom += 1

    def close(self) -> None:
        """Give the render context back to the process's pool of idle ones (its textures restored to the
        model's own), or free it when reuse is off (:data:`GL_POOL_SIZE`)."""
        if self._renderer is None:
            return
        ctx = self._renderer
        try:
            if GL_POOL_SIZE > 0 and self._context_key is not None:
                if self._edited_textures:
                    self.model.tex_data[:] = self._pristine_tex
                    self._upload_textures(self._edited_textures)
                    self._edited_textures = set()
                self._renderer = None
                _give_context(self._context_key, ctx)
                return
        except Exception:  # noqa: BLE001 - a context that cannot be restored is freed, not reused
            pass
        self._renderer = None
        ctx.free()
