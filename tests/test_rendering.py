"""The fast renderer: upright images, several envs in one process, options."""

import os
import subprocess
import sys

import mujoco
import numpy as np
import pytest

import vp_envs
from vp_envs.rendering import RenderOptions, SceneRenderer

from conftest import frame

SIDE_CAMERAS = ["corner", "corner2", "corner3", "corner4"]  # Meta-World's cameras that see a horizon


def _marker_rows(img: np.ndarray, colour: int) -> float:
    """Mean image row of pixels that are pure red (colour=0) or pure blue (colour=2)."""
    others = [c for c in range(3) if c != colour]
    mask = (img[..., colour] > 200) & (img[..., others[0]] < 40) & (img[..., others[1]] < 40)
    assert mask.sum() > 0, "marker not visible"
    return float(np.nonzero(mask)[0].mean())


@pytest.mark.parametrize("camera", SIDE_CAMERAS)
def test_images_are_upright(make_env, camera):
    """A red marker 40 cm above a blue one must appear above it in the image (row index smaller)."""
    env = make_env("vp/metaworld-reach-v3", cameras=(camera,), width=96, height=96)
    env.reset(seed=0)
    sim = env.unwrapped._sim
    renderer = SceneRenderer(sim.model, sim.data, (camera,), 96, 96)
    # Place both markers in front of the camera, 0.5-0.9 m along its optical axis.
    cam = renderer.model.camera(camera).id
    mujoco.mj_kinematics(renderer.model, renderer._data)
    mujoco.mj_camlight(renderer.model, renderer._data)
    pos = renderer._data.cam_xpos[cam]
    forward = -renderer._data.cam_xmat[cam].reshape(3, 3)[:, 2]
    centre = pos + 0.7 * forward
    lo, hi = centre - [0, 0, 0.03], centre + [0, 0, 0.03]
    renderer._extra = [
        dict(type=int(mujoco.mjtGeom.mjGEOM_SPHERE), size=np.array([0.012] * 3), pos=hi,
             rgba=np.array([1, 0, 0, 1], np.float32)),
        dict(type=int(mujoco.mjtGeom.mjGEOM_SPHERE), size=np.array([0.012] * 3), pos=lo,
             rgba=np.array([0, 0, 1, 1], np.float32)),
    ]
    renderer.model.light_diffuse[:] = 0  # flat markers: pure colours, easy to find
    renderer.model.vis.headlight.ambient[:] = 1
    renderer.model.vis.headlight.diffuse[:] = 0
    img = renderer.render(sim.data)[camera]
    renderer.close()
    assert _marker_rows(img, 0) < _marker_rows(img, 2)


def test_several_envs_in_one_process_render_like_one_alone(make_env):
    """Interleaved rendering of different tasks gives the same frames as each env alone."""
    alone = {}
    for task in ("pick-place-v3", "drawer-open-v3"):
        env = make_env(f"vp/metaworld-{task}", width=48, height=48)
        alone[task] = frame(env.reset(options={"episode": 0})[0])
        env.close()
    a = make_env("vp/metaworld-pick-place-v3", width=48, height=48)
    b = make_env("vp/metaworld-drawer-open-v3", width=48, height=48)
    fa = frame(a.reset(options={"episode": 0})[0])
    fb = frame(b.reset(options={"episode": 0})[0])
    fa2 = frame(a.reset(options={"episode": 0})[0])
    np.testing.assert_array_equal(fa, alone["pick-place-v3"])
    np.testing.assert_array_equal(fb, alone["drawer-open-v3"])
    np.testing.assert_array_equal(fa2, alone["pick-place-v3"])


def test_a_closed_envs_gl_context_serves_the_next_env_of_its_task(make_env, monkeypatch):
    """Closing an env gives its render context to the process's pool of idle ones; the next env whose model
    has the same assets, at the same size, takes it instead of building one (about 0.5-0.7 s) and draws exactly
    what a fresh context draws, also after a split whose factors repainted a texture."""
    from vp_envs import rendering

    rendering._free_pool()
    idle = lambda: sum(len(v) for v in rendering._POOL.values())  # noqa: E731
    size = dict(width=48, height=48)
    textured = make_env("vp/metaworld-door-open-v3", split="texture", level=2, **size)
    textured.reset(options={"episode": 1})
    assert textured.unwrapped._renderer._edited_textures, "the texture split repainted no texture"
    context = textured.unwrapped._renderer._renderer
    textured.close()
    assert idle() == 1
    other = make_env("vp/metaworld-reach-v3", **size)  # other assets: builds its own
    other.reset(options={"episode": 0})
    assert other.unwrapped._renderer._renderer is not context and idle() == 1
    reused = make_env("vp/metaworld-door-open-v3", **size)
    got = frame(reused.reset(options={"episode": 1})[0])
    assert reused.unwrapped._renderer._renderer is context and idle() == 0
    monkeypatch.setattr(rendering, "GL_POOL_SIZE", 0)
    fresh = make_env("vp/metaworld-door-open-v3", **size)
    np.testing.assert_array_equal(got, frame(fresh.reset(options={"episode": 1})[0]))
    assert fresh.unwrapped._renderer._renderer is not context
    fresh.close()
    assert idle() == 0  # reuse off: a closed env's context is freed


def test_render_options_change_pixels_not_state(make_env):
    fast = make_env("vp/metaworld-pick-place-v3", width=48, height=48)
    slow = make_env("vp/metaworld-pick-place-v3", width=48, height=48,
                    render_options=dict(shadows=True, msaa_samples=4, reflections=True))
    of, i_f = fast.reset(options={"episode": 0})
    os_, i_s = slow.reset(options={"episode": 0})
    np.testing.assert_array_equal(i_f["privileged_state"], i_s["privileged_state"])
    assert not np.array_equal(frame(of), frame(os_))
    with pytest.raises(ValueError, match="msaa_samples must be one of"):
        RenderOptions(msaa_samples=3)


def test_render_mode_rgb_array_returns_first_camera(make_env):
    env = make_env("vp/metaworld-reach-v3", render_mode="rgb_array", cameras=("corner3", "corner2"))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(env.render(), obs["pixels"]["corner3"])
    assert vp_envs.make("vp/metaworld-reach-v3", cameras=()).render() is None


def _run_alive(code: str):
    """Run ``code`` in a fresh Python (headless EGL); it must exit 0 after printing ``alive``."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "MUJOCO_GL": "egl"})
    assert out.returncode == 0 and out.stdout.strip() == "alive", (out.returncode, out.stderr[-2000:])
    return out


def test_torch_dynamo_imports_after_a_frame_is_rendered():
    """Mesa's and Triton's LLVMs: a process that renders and then loads Diffusion Policy or Video Policy (which
    import diffusers, hence ``torch._dynamo`` and Triton) must not crash (vp_envs.rendering loads Triton's
    library before any GL context exists)."""
    code = ("import vp_envs; env = vp_envs.make('vp/metaworld-reach-v3', width=16, height=16); "
            "obs, _ = env.reset(seed=0); assert obs['pixels']['corner2'].any(); "
            "import torch._dynamo; print('alive')")
    _run_alive(code)


def test_a_process_that_rendered_before_importing_vp_envs_gets_a_warning_not_a_crash():
    """Mesa's LLVM already loaded (MuJoCo rendered first): loading Triton's then would segfault, so vp_envs
    skips it and warns that a later ``torch._dynamo`` import may crash."""
    code = ("import mujoco; r = mujoco.Renderer(mujoco.MjModel.from_xml_string("
            "'<mujoco><worldbody><geom size=\"0.1\"/></worldbody></mujoco>'), 16, 16); r.render(); "
            "import vp_envs; env = vp_envs.make('vp/metaworld-reach-v3', width=16, height=16); "
            "obs, _ = env.reset(seed=0); assert obs['pixels']['corner2'].any(); env.close(); print('alive')")
    out = _run_alive(code)
    assert "rendered with MuJoCo" in out.stderr and "before it imported vp_envs" in out.stderr


def test_idle_render_contexts_are_freed_cleanly_at_exit_after_robosuites_own_renderer():
    """robosuite's stock renderer registers its own ``eglTerminate`` at exit when it makes its first context,
    after ours: idle pooled contexts must not then print EGL errors while the interpreter shuts down."""
    code = ("import vp_envs; e = vp_envs.make('vp/metaworld-reach-v3', width=16, height=16); e.reset(seed=0); "
            "e.close(); import robosuite; s = robosuite.make('Lift', robots='Panda', has_renderer=False, "
            "has_offscreen_renderer=True, use_camera_obs=True, camera_names='agentview', camera_heights=16, "
            "camera_widths=16); s.reset(); e = vp_envs.make('vp/metaworld-reach-v3', width=16, height=16); "
            "e.reset(seed=0); e.close(); print('alive')")
    out = _run_alive(code)
    assert "Exception ignored" not in out.stderr and "EGLError" not in out.stderr, out.stderr[-2000:]
