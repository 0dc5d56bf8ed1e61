"""python -m eval.trace: a policy's episodes step by step, with the simulator's state beside its actions."""

from pathlib import Path

import pandas as pd

from eval.trace import main, summary, trace


def test_the_expert_lifting_the_cube_shows_in_the_trace():
    df = trace("expert", "robosuite-lite-v2", "Lift", episodes=1)
    assert list(df.episode.unique()) == [0] and df.success.iloc[-1] and not df.success.iloc[0]
    assert list(df.step) == list(range(1, len(df) + 1))  # one row per step, as vp-eval counts them
    assert {f"action_{i}" for i in range(7)} <= set(df.columns) and {"cube_pos_z", "gripper_qpos_0"} <= set(df.columns)
    # the gripper closes (positive command) before the cube rises: the trace reads the simulator, not a replay
    first_close = df.step[df.action_6 > 0].min()
    rise = df.cube_pos_z - df.cube_pos_z.iloc[0]
    assert rise[df.step < first_close].abs().max() < 0.005 and rise.max() > 0.02
    s = summary(df)
    assert s.success.tolist() == [True] and s.cube_pos_rise_cm.iloc[0] > 2


def test_the_cli_writes_meta_worlds_named_fields_to_its_csv(tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert main(["expert", "--protocol", "metaworld-lite-v2", "--task", "button-press-topdown-v3",
                 "--episodes", "1", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert {"hand_pos_x", "object_pos_z", "goal_pos_y", "gripper"} <= set(df.columns) and df.success.iloc[-1]
    printed = capsys.readouterr().out
    assert "wrote" in printed and "object_pos_rise_cm" in printed and "hand_pos_rise_cm" not in printed
    s = summary(df)  # two tracked positions (object, goal): their distances, computed from the CSV's columns
    xy = 100 * ((df.object_pos_x - df.goal_pos_x) ** 2 + (df.object_pos_y - df.goal_pos_y) ** 2) ** 0.5
    assert s.object_to_goal_xy_cm_min.iloc[0] == round(xy.min(), 1) and "object_to_goal_xy_cm_final" in printed
    assert s.object_to_goal_dz_cm_final.iloc[0] == round(100 * (df.object_pos_z - df.goal_pos_z).iloc[-1], 1)
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # written atomically: no temporary file left


def test_a_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--protocol", "robosuite-lite-v2", "--task", "Lift"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eval.trace: error:") and "\n" not in err and "nope" in err


def test_an_exception_in_the_policy_is_recorded_and_the_next_episode_runs(monkeypatch):
    from eval import policies

    real = policies.load_policy_spec

    class Flaky:
        def __init__(self):
            self.inner, self.calls = real("expert"), 0

        def reset(self, env_ids=None):
            self.inner.reset(env_ids)

        def act(self, obs, infos):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("boom")
            return self.inner.act(obs, infos)

    monkeypatch.setattr(policies, "load_policy_spec", lambda spec: Flaky())
    df = trace("flaky", "robosuite-lite-v2", "Lift", episodes=2)
    first = df[df.episode == 0]
    assert "RuntimeError: boom" in first.error.iloc[-1] and len(first) == 3 and not first.success.any()
    assert df[df.episode == 1].success.iloc[-1]  # the next episode ran to its success
    assert "state_step" in df.columns  # robosuite's own step counter does not overwrite the row's step


def test_an_unknown_cell_lists_the_protocol_cells(capsys):
    assert main(["expert", "--protocol", "robosuite-lite-v2", "--task", "Door"]) == 2
    err = capsys.readouterr().err
    assert "no episodes of ('Door', 'test')" in err and "Stack/test" in err


def test_the_policy_acts_on_vp_evals_thread_count(monkeypatch):
    """The thread count changes a network's last bits, and closed loop those can change an episode: the trace
    runs inference on vp-eval's torch_threads (read from eval/conf/eval.yaml), and restores the caller's count."""
    import torch
    from omegaconf import OmegaConf

    from eval import policies

    seen, real = [], policies.load_policy_spec

    def recording(spec):
        inner = real(spec)

        class Recording(policies.Policy):
            privileged = True

            def act(self, obs, infos):
                seen.append(torch.get_num_threads())
                return inner.act(obs, infos)

        return Recording()

    monkeypatch.setattr(policies, "load_policy_spec", recording)
    torch.set_num_threads(2)
    trace("expert", "metaworld-lite-v2", "button-press-topdown-v3", episodes=1)
    expected = int(OmegaConf.load(Path(policies.__file__).parent / "conf" / "eval.yaml").torch_threads)
    assert seen and set(seen) == {expected} and torch.get_num_threads() == 2
    trace("expert", "metaworld-lite-v2", "button-press-topdown-v3", episodes=1, torch_threads=2)
    assert seen[-1] == 2


def test_a_bad_thread_count_is_one_line_and_exit_2(capsys):
    assert main(["expert", "--protocol", "metaworld-lite-v2", "--task", "button-press-topdown-v3",
                 "--torch-threads", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "eval.trace: error: torch_threads must be 1 or more; got 0"
