"""vp-data: the dataset format, action-free video, failure accounting, resume and corrupt files."""

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from vp_envs.datagen import generate, main
from vp_envs.dataset import DatasetError, TaskFile, open_dataset

TASKS = ["reach-v3", "button-press-topdown-v3"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos")
    generate("metaworld", TASKS, "train", 2, out, size=32, max_steps=200, progress=False)
    return out


def test_dataset_layout_readable_with_plain_h5py(demo_dir):
    manifest = json.loads((demo_dir / "manifest.json").read_text())
    assert set(manifest["tasks"]) == set(TASKS)
    assert manifest["split_file_version"] >= 1 and manifest["versions"]["metaworld"]
    with h5py.File(demo_dir / "reach-v3.hdf5", "r") as f:
        assert f.attrs["format"] == "vp-bench-dataset" and f.attrs["has_actions"]
        assert f.attrs["instruction"] == "Reach the goal position with the gripper."
        ep = f["data/ep_000000"]
        n = ep["actions"].shape[0]
        assert ep["obs/corner2"].shape == (n + 1, 32, 32, 3) and ep["obs/corner2"].dtype == np.uint8
        assert ep["obs/corner2"].compression == "gzip"
        assert ep["obs/state"].shape == (n + 1, 4) and ep["successes"][-1]
        assert ep.attrs["seed"] > 0 and ep.attrs["success"]


def test_demos_replay_to_the_same_states(demo_dir):
    """Recorded actions replayed from the recorded seed reproduce the recorded states."""
    import vp_envs

    tf = TaskFile(demo_dir / "reach-v3.hdf5")
    ep = tf.episode(1)
    env = vp_envs.make("vp/metaworld-reach-v3", cameras=())
    _, info = env.reset(seed=ep.seed)
    np.testing.assert_allclose(info["privileged_state"], ep.privileged_state[0])
    for t, action in enumerate(ep.actions):
        _, _, _, _, info = env.step(action)
    np.testing.assert_allclose(info["privileged_state"], ep.privileged_state[-1], atol=1e-8)
    assert info["success"]
    env.close()
    tf.close()


def test_action_free_video_has_no_actions(tmp_path):
    generate("metaworld", ["drawer-open-v3"], "train", 1, tmp_path, size=24, drop_actions=True, progress=False)
    files = open_dataset(tmp_path)
    ep = files["drawer-open-v3"].episode(0)
    assert ep.actions is None and ep.frames["corner2"].shape[0] == ep.num_steps + 1
    assert not files["drawer-open-v3"].attrs["has_actions"]


def test_action_noise_records_the_experts_action_on_a_perturbed_path(tmp_path, demo_dir):
    """DART (--action-noise): the states leave the clean demo's path, each recorded action is what the expert
    says in the state it was in (not the executed, noisy one), the gripper command is never perturbed, the
    recording is reproducible, and a noise-free dataset's settings hash is what it was before the option."""
    import vp_envs

    generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "a", size=16, max_steps=200, action_noise=0.3,
             progress=False)
    noisy = open_dataset(tmp_path / "a")["reach-v3"].episode(0)
    clean = TaskFile(demo_dir / "reach-v3.hdf5").episode(0)
    assert noisy.seed == clean.seed
    n = min(len(noisy.actions), len(clean.actions))
    assert not np.allclose(noisy.privileged_state[1:n], clean.privileged_state[1:n])
    env = vp_envs.make("vp/metaworld-reach-v3", cameras=())
    expert = vp_envs.scripted_expert(env)
    obs, info = env.reset(options={"episode": 0})
    np.testing.assert_allclose(info["privileged_state"], noisy.privileged_state[0])
    for t in range(5):  # the expert, put in each recorded state, gives the recorded action
        expert_action = expert(obs, {**info, "privileged_state": noisy.privileged_state[t]})
        np.testing.assert_allclose(noisy.actions[t], expert_action, atol=1e-6)
        obs, _, _, _, info = env.step(noisy.actions[t])  # the clean action: the path then differs from the data
    assert not np.allclose(info["privileged_state"], noisy.privileged_state[5])
    env.close()
    generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "b", size=16, max_steps=200, action_noise=0.3,
             progress=False)
    again = open_dataset(tmp_path / "b")["reach-v3"].episode(0)
    np.testing.assert_array_equal(again.actions, noisy.actions)
    settings = json.loads((tmp_path / "a" / "manifest.json").read_text())["settings"]
    assert settings["action_noise"] == 0.3
    assert "action_noise" not in json.loads((demo_dir / "manifest.json").read_text())["settings"]
    with pytest.raises(ValueError, match="action-noise"):
        generate("metaworld", ["reach-v3"], "train", 1, tmp_path / "c", action_noise=-0.1, progress=False)


def test_expert_version_is_recorded_per_task_and_stale_demos_are_refused(tmp_path):
    """vp-data records, per task, an expert past version 1 (robosuite's Stack: 2), leaves first versions
    unrecorded (so older datasets read the same), and refuses to extend a dataset whose demos came from another
    version of an expert, naming the task; --expert-version 1 remakes the old demos."""
    out = tmp_path / "rs"
    kw = dict(size=16, max_steps=3, keep_failed=True, max_attempts=1, progress=False)
    generate("robosuite", ["Stack"], "train", 1, out, expert_version=1, **kw)
    assert "expert_version" not in json.loads((out / "manifest.json").read_text())["tasks"]["Stack"]
    generate("robosuite", ["Stack"], "train", 1, out, expert_version=1, **kw)  # the same: skipped
    with pytest.raises(ValueError, match=r"another version of the scripted expert: Stack \(recorded with version 1, "
                                         r"wanted 2\)"):
        generate("robosuite", ["Stack"], "train", 1, out, **kw)
    generate("robosuite", ["Stack"], "train", 1, tmp_path / "v2", **kw)
    assert json.loads((tmp_path / "v2" / "manifest.json").read_text())["tasks"]["Stack"]["expert_version"] == 2
    with pytest.raises(ValueError, match="expert-version"):
        generate("robosuite", ["Stack"], "train", 1, tmp_path / "c", expert_version=0, **kw)


def test_failed_expert_episodes_are_counted_and_left_out(tmp_path):
    # Five steps are too few for any expert: every episode fails.
    generate("metaworld", ["pick-place-v3"], "train", 2, tmp_path / "a", size=16, max_steps=5,
             max_attempts=3, progress=False)
    row = json.loads((tmp_path / "a" / "manifest.json").read_text())["tasks"]["pick-place-v3"]
    assert (row["episodes_tried"], row["episodes_kept"], row["expert_failures"]) == (3, 0, 3)
    generate("metaworld", ["pick-place-v3"], "train", 2, tmp_path / "b", size=16, max_steps=5,
             keep_failed=True, progress=False)
    assert len(open_dataset(tmp_path / "b")["pick-place-v3"]) == 2


def test_resume_skips_finished_tasks(tmp_path):
    generate("metaworld", ["reach-v3"], "train", 1, tmp_path, size=16, progress=False)
    first = os.stat(tmp_path / "reach-v3.hdf5").st_mtime_ns
    generate("metaworld", ["reach-v3", "push-v3"], "train", 1, tmp_path, size=16, progress=False)
    assert os.stat(tmp_path / "reach-v3.hdf5").st_mtime_ns == first  # not redone
    assert set(open_dataset(tmp_path)) == {"reach-v3", "push-v3"}
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="made with other settings"):
        generate("metaworld", ["reach-v3"], "train", 3, tmp_path, size=16, progress=False)


def test_a_dataset_still_being_recorded_is_refused(tmp_path, monkeypatch):
    # A training that starts while vp-data records, or after it was interrupted, must not train on some of the
    # tasks: the manifest exists from the first task on, so readers go by its `pending` list.
    import vp_envs.datagen as datagen

    real = datagen.write_task_file

    def interrupted_on_push(path, *args, **kwargs):
        if Path(path).name == "push-v3.hdf5":
            raise KeyboardInterrupt
        real(path, *args, **kwargs)

    monkeypatch.setattr(datagen, "write_task_file", interrupted_on_push)
    with pytest.raises(KeyboardInterrupt):
        generate("metaworld", ["reach-v3", "push-v3"], "train", 1, tmp_path, size=16, progress=False)
    assert (tmp_path / "reach-v3.hdf5").exists()
    with pytest.raises(DatasetError, match=f"{tmp_path} is incomplete: push-v3 not written yet"):
        open_dataset(tmp_path)
    monkeypatch.setattr(datagen, "write_task_file", real)
    generate("metaworld", ["reach-v3", "push-v3"], "train", 1, tmp_path, size=16, progress=False)  # resumes
    assert set(open_dataset(tmp_path)) == {"reach-v3", "push-v3"}
    assert "pending" not in json.loads((tmp_path / "manifest.json").read_text())


def test_corrupt_and_missing_files_name_path_and_reason(tmp_path, demo_dir):
    bad = tmp_path / "broken.hdf5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetError, match=f"cannot open dataset file {bad}"):
        TaskFile(bad)
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes((demo_dir / "reach-v3.hdf5").read_bytes()[:3000])
    with pytest.raises(DatasetError, match=str(truncated)):
        TaskFile(truncated)
    with pytest.raises(DatasetError, match="manifest.json is missing"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(DatasetError, match="not valid JSON"):
        open_dataset(tmp_path)


def test_cli_rejects_unknown_task_and_split(tmp_path, capsys):
    assert main(["--tasks", "pick-plce-v3", "--out", str(tmp_path)]) == 2
    assert "unknown metaworld task 'pick-plce-v3'; known: all, held_out" in capsys.readouterr().err
    assert main(["--tasks", "reach-v3", "--split", "camra", "--out", str(tmp_path)]) == 2
    assert "unknown split 'camra'" in capsys.readouterr().err
    assert main(["--tasks", "reach-v3", "--action-noise", "2", "--out", str(tmp_path)]) == 2
    assert "--action-noise must be in [0, 1)" in capsys.readouterr().err
    assert main(["--suite", "robosuite", "--tasks", "Stack", "--expert-version", "0", "--out", str(tmp_path)]) == 2
    assert "--expert-version must be 1 or more; got 0" in capsys.readouterr().err


def test_a_metaworld_dataset_recorded_before_the_render_fix_is_flagged(tmp_path, caplog):
    """Manifests record render_version; a Meta-World dataset without it (recorded by vp-bench 0.1) warns."""
    import json

    from vp_envs.dataset import warn_if_pre_render_fix

    old = {"settings": {"suite": "metaworld"}, "tasks": {}}
    assert warn_if_pre_render_fix(tmp_path, old)
    assert "before render version 2" in caplog.text
    assert not warn_if_pre_render_fix(tmp_path, {**old, "render_version": 2})
    assert not warn_if_pre_render_fix(tmp_path, {"settings": {"suite": "robosuite"}, "tasks": {}})
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    caplog.clear()
    from vp_envs.dataset import open_dataset

    assert open_dataset(tmp_path) == {} and "before render version 2" in caplog.text
