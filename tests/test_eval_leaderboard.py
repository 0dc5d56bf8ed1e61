"""The leaderboard's numbers are exactly what a hand count of the parquet rows gives."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from eval.leaderboard import build, main
from eval.runner import ROW_COLUMNS
from vp_envs.stats import wilson_interval


def fake_rows(policy: str, outcomes: dict[str, list[int]], errors: dict[str, int] | None = None,
              render_version: int | None = 2, suite: str = "metaworld") -> pd.DataFrame:
    """Rows for one policy: ``outcomes[split]`` lists 0/1 per episode; ``errors[split]`` marks that many of
    the successful ones as errored (an errored episode must count as a failure)."""
    rows = []
    for split, results in outcomes.items():
        task = "door-close-v3" if split == "new_task" else "reach-v3"
        n_err = (errors or {}).get(split, 0)
        for i, ok in enumerate(results):
            err = "RuntimeError: boom" if ok and n_err > 0 else ""
            n_err -= bool(err)
            rows.append(dict(policy=policy, checkpoint_hash=f"{policy}-hash", protocol="toy", protocol_version=1,
                             protocol_sha256="ab" * 32, suite=suite, task=task, split=split,
                             level=2 if split == "camera" else 1, episode=i, seed=i, success=bool(ok), steps=10,
                             **{"return": 1.0}, error=err, vp_bench_version="0", render_version=render_version,
                             wall_time_s=0.1,
                             finished_at="2026-01-01T00:00:00+00:00"))
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def test_numbers_match_a_hand_count(tmp_path):
    results = tmp_path / "results"
    (results / "runs" / "a").mkdir(parents=True)
    (results / "runs" / "b").mkdir(parents=True)
    fake_rows("alpha", {"test": [1] * 8 + [0] * 2, "camera": [1] * 5 + [0] * 5, "new_task": [1, 0, 0, 0]},
              errors={"camera": 1}).to_parquet(results / "runs" / "a" / "episodes.parquet")
    fake_rows("beta", {"test": [0] * 10, "camera": [0] * 10, "new_task": [0] * 4}).to_parquet(
        results / "runs" / "b" / "episodes.parquet")
    assert main(["--results", str(results)]) == 0

    csv = pd.read_csv(results / "leaderboard.csv")
    alpha = csv[csv["policy"] == "alpha"].set_index("split")
    # by hand: test 8/10; camera 5 successes, one of them errored -> 4/10; new_task 1/4
    for split, k, n in (("test", 8, 10), ("camera", 4, 10), ("new_task", 1, 4)):
        lo, hi = wilson_interval(k, n)
        assert (alpha.loc[split, "episodes"], alpha.loc[split, "successes"]) == (n, k)
        assert alpha.loc[split, "success_rate"] == pytest.approx(k / n, abs=1e-4)
        assert (alpha.loc[split, "ci95_low"], alpha.loc[split, "ci95_high"]) == pytest.approx((lo, hi), abs=1e-4)
    assert alpha.loc["camera", "errors"] == 1
    assert alpha.loc["camera", "drop_vs_test"] == pytest.approx(0.8 - 0.4, abs=1e-4)
    assert alpha.loc["new_task", "drop_vs_test"] == pytest.approx(0.8 - 0.25, abs=1e-4)
    assert pd.isna(alpha.loc["test", "drop_vs_test"])
    assert alpha.loc["mean", "success_rate"] == pytest.approx((0.8 + 0.4 + 0.25) / 3, abs=1e-4)

    md = (results / "LEADERBOARD.md").read_text()
    assert "| `alpha` (alpha-ha) | 80 [49, 94] | 40 [17, 69] (1 err) | 25 [5, 70] | **48** |" in md
    assert "| `alpha` (alpha-ha) | +40 | +55 |" in md
    assert (results / "toy_success.png").stat().st_size > 1000


def test_empty_results_folder(tmp_path):
    summary = build(tmp_path)
    assert summary.empty and "No results yet" in (tmp_path / "LEADERBOARD.md").read_text()


def test_incomplete_runs_are_listed_not_ranked():
    import pandas as pd

    from eval.leaderboard import complete_runs

    def rows(policy, n):
        return [dict(protocol="p", protocol_version=1, protocol_sha256="abc", policy=policy, checkpoint_hash=policy,
                     task="reach-v3", split="test", level=1, episode=i, success=True, error="",
                     source=f"{policy}/episodes.parquet") for i in range(n)]

    frame = pd.DataFrame(rows("full", 4) + rows("partial", 2))
    kept, notes = complete_runs(frame)
    assert set(kept["policy"]) == {"full"}
    assert notes == ["`partial` on p: 2 of 4 episodes (partial/episodes.parquet)"]


def test_partial_runs_and_video_scores_are_shown_apart(tmp_path):
    """A run over some splits only is listed, summarised in its own table, and not ranked; episodes scored
    with video_psnr get the success/failure comparison with a correlation a hand count reproduces."""
    import numpy as np

    results = tmp_path / "results"
    (results / "runs" / "full").mkdir(parents=True)
    (results / "runs" / "part").mkdir(parents=True)
    fake_rows("alpha", {"test": [1, 0, 1, 0], "camera": [1, 1, 1, 1]}).to_parquet(results / "runs" / "full" / "episodes.parquet")
    part = fake_rows("gamma", {"test": [1, 1, 0, 0]})
    part["video_psnr"] = [20.0, 18.0, 12.0, 14.0]
    part.to_parquet(results / "runs" / "part" / "episodes.parquet")
    assert main(["--results", str(results)]) == 0
    md = (results / "LEADERBOARD.md").read_text()
    ranked = md.split("Incomplete runs")[0]
    assert "`alpha`" in ranked and "`gamma`" not in ranked
    assert "# Partial runs" in md and "| `gamma` (gamma-ha) | 50 [15, 85] | **50** |" in md
    corr = np.corrcoef([20, 18, 12, 14], [1, 1, 0, 0])[0, 1]
    assert f"| toy | `gamma` (gamma-ha) | test | 4 | 19.0 (n=2) | 13.0 (n=2) | {corr:+.2f} |" in md
    assert [p.name for p in results.glob("*_video_vs_success.png")] == ["toy_video_vs_success.png"]  # per protocol


def test_sample_efficiency_pools_seeds_per_budget(tmp_path, monkeypatch):
    """Runs whose manifest records training (method, budget, seed, recipe) become one line per (method,
    recipe) over budgets; counts pool over seeds; a recipe at a single budget and seed and an action-free run
    are left out, a recipe at one budget with two seeds is shown (its seed spread); the drop plot is written;
    nothing is left under a temporary name."""
    import json

    results = tmp_path / "results"
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append((src, dst)), real_replace(src, dst)))

    def run(name, outcomes, method="bc", n=5, seed=0, recipe="r1", action_free=()):
        d = results / "runs" / name
        d.mkdir(parents=True)
        fake_rows(name, outcomes).to_parquet(d / "episodes.parquet")
        training = {"method": method, "episodes_per_task": n, "seed": seed, "recipe_hash": recipe,
                    "action_free_data": list(action_free)}
        (d / "manifest.json").write_text(json.dumps({"policy": {"spec": name, "training": training}}))

    run("bc5s0", {"test": [1, 0, 0, 0]}, n=5, seed=0)
    run("bc5s1", {"test": [1, 1, 0, 0]}, n=5, seed=1)
    run("bc5s0-retrained", {"test": [0, 0, 0, 0]}, n=5, seed=0)
    run("bc25", {"test": [1, 1, 1, 0], "camera": [1, 0, 0, 0]}, n=25)
    run("other", {"test": [1, 1, 1, 1]}, n=5, recipe="r2")           # one budget only: no line
    run("vpaf", {"test": [1, 1, 1, 1]}, method="video_policy", n=10, action_free=["data/v"])
    run("vp25", {"test": [0, 0, 0, 0]}, method="video_policy", n=25)  # one budget and seed for vp: no line
    run("dp25s0", {"test": [1, 1, 0, 0]}, method="diffusion", n=25, recipe="r3")
    run("dp25s1", {"test": [1, 1, 1, 1]}, method="diffusion", n=25, seed=1, recipe="r3")  # two seeds: a line
    run("bc10-running", {"test": [1, 1, 1, 1]}, n=10)  # still evaluating: 4 of the 8 episodes it selected
    manifest = results / "runs" / "bc10-running" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "episodes_total": 8}))
    assert main(["--results", str(results)]) == 0

    all_se = pd.read_csv(results / "sample_efficiency.csv")
    assert all_se[all_se["method"] == "diffusion"]["run_rates"].tolist() == ["s0:50 s1:100"]
    se = all_se[all_se["method"] == "bc"].set_index("episodes_per_task")
    assert set(all_se["method"]) == {"bc", "diffusion"}
    assert (se.loc[5, "runs"], se.loc[5, "seeds"], se.loc[5, "episodes"], se.loc[5, "successes"]) == (3, 2, 12, 3)
    assert se.loc[5, "run_rates"] == "s0:0 s0:25 s1:50"  # a retrain with seed 0 is a second run, not a seed
    assert (se.loc[25, "episodes"], se.loc[25, "successes"]) == (4, 3)  # test episodes only
    lo, hi = wilson_interval(3, 12)
    assert (se.loc[5, "ci95_low"], se.loc[5, "ci95_high"]) == pytest.approx((lo, hi), abs=1e-4)
    md = (results / "LEADERBOARD.md").read_text()
    assert "# Sample efficiency" in md and "| toy | BC (r1) | 5 | 3 | 12 | 25 [9, 53] | s0:0 s0:25 s1:50 |" in md
    # the README block of one protocol: the same lines, and a sentence for a protocol without any
    from eval.leaderboard import load_rows, sample_efficiency_block

    rows = load_rows(results / "runs")
    block = sample_efficiency_block(rows, "toy")
    assert "| toy | BC (r1) | 5 | 3 | 12 | 25 [9, 53] | s0:0 s0:25 s1:50 |" in block and "# Sample" not in block
    # the block also shows recipes trained at one budget and seed (an ablation beside the curve), not action-free runs
    assert "| toy | BC (r2) | 5 | 1 | 4 | 100 " in block and "| toy | Video Policy (r1) | 25 | 1 | 4 | 0 " in block
    assert "| 10 |" not in block  # the action-free run and the one still evaluating
    assert sample_efficiency_block(rows, "nope") == "No nope training run with a demonstration budget yet.\n"
    assert (results / "toy_sample_efficiency.png").stat().st_size > 1000
    assert (results / "toy_drop.png").stat().st_size > 1000
    assert not list(results.glob(".*tmp*"))
    written_by_rename = {Path(dst).name for _, dst in renames}
    assert {"toy_sample_efficiency.png", "toy_drop.png", "toy_success.png",
            "sample_efficiency.csv", "LEADERBOARD.md"} <= written_by_rename, "PNGs and tables are atomic"


def test_rows_from_before_the_render_fix_are_labelled_and_never_ranked_with_later_ones(tmp_path):
    """Meta-World rows of render version 1 (or without the column) go under ``<protocol>.render-v1`` with the
    defect's note; robosuite rows of version 1 were rendered right and stay where they are."""
    results = tmp_path / "results"
    for name, frame in {
        "old": fake_rows("alpha", {"test": [1] * 10}, render_version=None),
        "new": fake_rows("alpha", {"test": [0] * 10}),
        "rs": fake_rows("gamma", {"test": [1] * 10}, render_version=1, suite="robosuite"),
    }.items():
        (results / name).mkdir(parents=True)
        if name == "old":
            frame = frame.drop(columns=["render_version"])  # written before the column existed
        frame.to_parquet(results / name / "episodes.parquet")
    build(results)
    csv = pd.read_csv(results / "leaderboard.csv")
    test = csv[csv["split"] == "test"].set_index(["protocol", "policy"])["success_rate"]
    assert test[("toy.render-v1", "alpha")] == 1.0
    assert test[("toy", "alpha")] == 0.0
    assert test[("toy", "gamma")] == 1.0
    md = (results / "LEADERBOARD.md").read_text()
    def section(heading):
        start = md.index(heading)
        return md[start:md.find("\n## ", start + 1)]

    assert "Rows made before render version 2" in section("## toy.render-v1 (")
    assert "Rows made before render version 2" not in section("## toy (")
    # the same policy before and after, side by side (gamma ran only once: not in the comparison)
    compare = md[md.index("## toy: before and after the render fix"):]
    assert "**`alpha`**" in compare and "`gamma`" not in compare
    assert "| before | 100 [72, 100] | 100 |" in compare and "| after | 0 [0, 28] | 0 |" in compare


def test_same_as_test_counts_episodes_a_shift_left_unchanged(tmp_path):
    """A policy whose texture episodes repeat test's (same outcome, steps, return within 1%) scores 100%; one
    whose returns move by more than 1% or whose outcome changes does not."""
    from eval.leaderboard import same_as_test

    blind = fake_rows("blind", {"test": [1, 0, 1, 0], "texture": [1, 0, 1, 0]})
    reader = fake_rows("reader", {"test": [1, 0, 1, 0], "texture": [1, 1, 1, 0]})
    reader.loc[(reader["split"] == "texture") & (reader["episode"] == 2), "return"] = 1.5
    blind.loc[(blind["split"] == "texture") & (blind["episode"] == 3), "return"] = 1.005  # within 1%
    table = same_as_test(pd.concat([blind, reader])).set_index("policy")
    assert table.loc["blind", "same_as_test"] == 4 and table.loc["blind", "episodes"] == 4
    assert table.loc["reader", "same_as_test"] == 2  # episode 1 changed outcome, episode 2 its return
    (results := tmp_path / "results" / "r").mkdir(parents=True)
    pd.concat([blind, reader]).to_parquet(results / "episodes.parquet")
    build(tmp_path / "results")
    md = (tmp_path / "results" / "LEADERBOARD.md").read_text()
    assert "| `blind` (blind-ha) | - | - | 100 (4) | - |" in md
    assert "| `reader` (reader-h) | - | - | 50 (4) | - |" in md


def test_readme_generated_blocks_match_the_committed_results():
    """The generated tables of README.md and docs/ are what `vp-leaderboard --readme ...` makes of results/
    now, and every block appears somewhere."""
    import re

    from eval.leaderboard import README_BLOCKS, load_rows, readme_block

    root = Path(__file__).resolve().parents[1]
    rows = load_rows(root / "results")
    seen = set()
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = path.read_text()
        for name in README_BLOCKS:
            for found in re.finditer(rf"<!-- vp-leaderboard:{name} -->\n(.*?)<!-- /vp-leaderboard:{name} -->", text, re.S):
                seen.add(name)
                assert found.group(1) == readme_block(name, rows), (
                    f"{path.name}'s {name!r} block is stale: run "
                    "`vp-leaderboard --readme README.md --readme docs/results.md`")
    assert seen == set(README_BLOCKS), f"blocks missing from README.md and docs/: {set(README_BLOCKS) - seen}"


def test_readme_is_a_door_not_a_report():
    """The README stays short: what it is, two commands, one generated table, links (detail lives in docs/)."""
    root = Path(__file__).resolve().parents[1]
    assert len((root / "README.md").read_bytes()) <= 15_000


def test_a_partial_run_of_an_unshipped_protocol_is_not_ranked_when_it_is_the_only_run(tmp_path):
    """Without a complete run beside it, the largest group of a protocol hash is the partial run itself; the
    run's manifest says how many episodes its protocol has."""
    import json

    from eval.leaderboard import complete_runs, load_rows

    results = tmp_path / "results"
    run_dir = results / "runs" / "part"
    run_dir.mkdir(parents=True)
    fake_rows("gamma", {"test": [1, 1, 0, 0]}).to_parquet(run_dir / "episodes.parquet")
    (run_dir / "manifest.json").write_text(json.dumps({"episodes_total": 4, "protocol_episodes_total": 8}))
    kept, notes = complete_runs(load_rows(results))
    assert kept.empty and notes and "4 of 8 episodes" in notes[0]
    (run_dir / "manifest.json").write_text(json.dumps({"episodes_total": 4, "protocol_episodes_total": 4}))
    kept, notes = complete_runs(load_rows(results))
    assert len(kept) == 4 and not notes


def test_per_task_table_puts_published_numbers_beside_each_run(tmp_path):
    from eval.leaderboard import per_task_table

    rows = fake_rows("alpha", {"test": [1, 1, 0, 1], "camera": [0, 0, 0, 0]})
    rows["source"], rows["method"] = "x", "bc"
    published = tmp_path / "pub.csv"
    published.write_text("task,success_rate\nreach-v3,0.18\n")
    table = per_task_table(rows, protocol="toy", published=published)
    assert "| reach-v3 | 75 | 18 |" in table and "| **all** | **75** | 18 (of 1 tasks) |" in table
    # a run of every test episode but no other split is shown, marked; one missing test episodes is not
    only_test = fake_rows("beta", {"test": [1, 0, 0, 0]})
    short = fake_rows("gamma", {"test": [1, 1]})
    both = pd.concat([rows, only_test.assign(source="y", method="dp"), short.assign(source="z", method="vp")])
    table = per_task_table(both, protocol="toy", published=published)
    assert "dp (beta-has) (test only)" in table and "| reach-v3 | 75 | 25 | 18 |" in table and "gamma" not in table
    # a run whose checkpoint records its demo budget and seed says so in its column
    import json

    (tmp_path / "se").mkdir()
    (tmp_path / "se" / "manifest.json").write_text(json.dumps(
        {"policy": {"training": {"method": "bc", "episodes_per_task": 5, "seed": 1}}}))
    budgeted = fake_rows("delta", {"test": [1, 1, 1, 1]}).assign(source=str(tmp_path / "se" / "episodes.parquet"),
                                                                   method="bc")
    assert "bc, 5 demos s1 (delta-ha) (test only)" in per_task_table(pd.concat([both, budgeted]), protocol="toy",
                                                                      published=published)
    # the README's short version keeps the largest budget's runs (and runs that record none)
    (tmp_path / "se25").mkdir()
    (tmp_path / "se25" / "manifest.json").write_text(json.dumps(
        {"policy": {"training": {"method": "bc", "episodes_per_task": 25, "seed": 0}}}))
    full = fake_rows("eps", {"test": [0, 0, 0, 0]}).assign(source=str(tmp_path / "se25" / "episodes.parquet"),
                                                          method="bc")
    short_table = per_task_table(pd.concat([both, budgeted, full]), protocol="toy", published=published,
                                 full_data=True)
    assert "delta" not in short_table and "bc, 25 demos s0 (eps-hash)" in short_table and "beta" in short_table


def test_runs_evaluated_in_training_mode_are_marked(tmp_path):
    """Sessions from before the fix loaded trained policies in torch's training mode; where that changed the
    actions (random crop, conditioning dropout) the run's method carries the mark, nowhere else."""
    import json

    from eval.leaderboard import TRAIN_MODE_MARK, evaluated_in_training_mode, run_method

    def run(name, policy, config, sessions):
        d = tmp_path / name
        d.mkdir()
        training = {"method": policy, "recipe": {"policy": {"name": policy, "config": config}}}
        (d / "manifest.json").write_text(json.dumps({"policy": {"training": training}, "sessions": sessions}))
        return d

    old, new = [{"start": "a"}], [{"start": "a", "inference_mode": "eval"}]
    assert evaluated_in_training_mode(run("crop", "bc", {"crop": 58}, old) / "episodes.parquet")
    assert evaluated_in_training_mode(run("default-crop", "diffusion", {}, old) / "episodes.parquet")
    assert evaluated_in_training_mode(run("vp", "video_policy", {}, old) / "episodes.parquet")
    assert not evaluated_in_training_mode(run("fixed", "bc", {"crop": 58}, new) / "episodes.parquet")
    assert evaluated_in_training_mode(run("resumed", "bc", {"crop": 58}, old + new) / "episodes.parquet")  # one old session
    assert not evaluated_in_training_mode(run("no-crop", "bc", {"crop": 0}, old) / "episodes.parquet")
    assert not evaluated_in_training_mode(run("state", "bc", {"use_image": False}, old) / "episodes.parquet")
    assert not evaluated_in_training_mode(run("vp-nodrop", "video_policy", {"cond_dropout": 0}, old) / "episodes.parquet")
    assert run_method(tmp_path / "crop", "x") == f"bc {TRAIN_MODE_MARK}"
    assert run_method(tmp_path / "fixed", "x") == "bc"


def test_offline_table_lists_each_committed_score_file_with_the_error_split(tmp_path):
    import json

    from eval.leaderboard import offline_table

    (tmp_path / "vp-lite-v2.json").write_text(json.dumps({
        "checkpoint": "runs/train/vp/checkpoints/last", "overrides": {}, "windows": 48, "action_mse": 0.0446,
        "action_mse_real_future": 0.0237, "video_psnr": 24.12, "recon_psnr": 24.75,
        "image_use": {"noise_image": 0.39, "shuffled_state": 0.019}}))
    (tmp_path / "vp-lite-v2_fs1.json").write_text(json.dumps({
        "checkpoint": "runs/train/vp/checkpoints/last", "overrides": {"feature_steps": 1}, "windows": 48,
        "action_mse": 0.0658}))
    (tmp_path / "bc-lite.json").write_text("{}")  # another protocol's file: not listed
    (tmp_path / "broken-lite-v2.json").write_text("{not json")  # unreadable: a row that says so, not fatal
    table = offline_table(folder=tmp_path)
    lines = table.strip().splitlines()
    assert len(lines) == 5 and "bc-lite.json" not in table
    assert "`broken-lite-v2.json` | unreadable: JSONDecodeError" in lines[2]
    assert "| 0.0446 | 0.0237 | 24.1 | 24.8 | 0.390 | 0.019 |" in lines[3]
    assert "feature_steps=1" in lines[4] and "| 0.0658 |  |" in lines[4]
    assert "No offline scores" in offline_table(folder=tmp_path / "none")


def test_probe_table_is_generated_from_the_committed_probe_files(tmp_path):
    """The docs' probe table comes from results/probes/*.csv: trained features only, the frame's own pixels
    first and once, one column per task object, the mean-layout guess last; an unreadable file says so."""
    from eval.leaderboard import probe_table

    cols = "checkpoint,encoder,features,task,object,split,episodes,camera,r2,err_cm,spread_cm\n"
    frame = "(the frame),none,pixels-16x16,Stack,cubeA,test,200,agentview,0.9892,0.5491,6.161\n"
    (tmp_path / "rs2-vp.csv").write_text(
        cols + frame + "runs/train/a/checkpoints/last,trained,latent,Stack,cubeA,test,200,agentview,0.51,4.004,6.161\n"
        "runs/train/a/checkpoints/last,random-init,latent,Stack,cubeA,test,200,agentview,0.21,5.314,6.161\n"
        "runs/train/a/checkpoints/last,trained,latent,Lift,cube,test,200,agentview,0.99,0.1756,2.225\n")
    (tmp_path / "rs2-vp-b.csv").write_text(
        cols + frame + "runs/train/b/checkpoints/vae,trained,latent,Stack,cubeA,test,200,agentview,0.71,2.971,6.161\n")
    (tmp_path / "other.csv").write_text("not a probe")  # outside the pattern: not read
    lines = probe_table(folder=tmp_path).strip().splitlines()
    assert lines[0] == "| checkpoint | features | Stack cubeA | Lift cube |"
    assert lines[2] == "| `(the frame)` | pixels-16x16 | 0.5 (0.99) |  |"
    assert lines[3] == "| `a` | latent | 4.0 (0.51) | 0.2 (0.99) |"
    assert lines[4] == "| `b/checkpoints/vae` | latent | 3.0 (0.71) |  |"
    assert lines[5] == "| (guessing the mean layout) | | 6.2 | 2.2 |" and len(lines) == 6
    (tmp_path / "rs2-vp-c.csv").write_bytes(b"\x00\x01")
    assert "rs2-vp-c.csv is unreadable" in probe_table(folder=tmp_path)
    assert "No probes matching" in probe_table(folder=tmp_path / "none")


def test_runs_of_one_recipe_from_different_pretrained_video_models_are_not_pooled(tmp_path):
    """A recipe names its pretrained video model by folder: when the folder was pretrained again, the runs of
    the two models get their own lines (<hash>/<model>); runs that recorded no model hash pool as before."""
    import json

    results = tmp_path / "results"

    def run(name, n, seed, sha=None):
        d = results / "runs" / name
        d.mkdir(parents=True)
        fake_rows(name, {"test": [1, 0]}).to_parquet(d / "episodes.parquet")
        training = {"method": "video_policy_pretrained", "episodes_per_task": n, "seed": seed,
                    "recipe_hash": "feedbeef", "action_free_data": [], "video_model_sha256": sha}
        (d / "manifest.json").write_text(json.dumps({"policy": {"spec": name, "training": training}}))

    run("a5s0", 5, 0, "a" * 64)
    run("a5s1", 5, 1, "a" * 64)
    run("b5s2", 5, 2, "b" * 64)  # the folder pretrained again
    run("b5s4", 5, 4, "b" * 64)
    run("c1s0", 1, 0, "c" * 64)  # a third model, at another budget
    run("c1s1", 1, 1, "c" * 64)
    run("old5s3", 5, 3)          # no hash recorded: the bare recipe hash
    run("old5s5", 5, 5)
    assert main(["--results", str(results)]) == 0
    se = pd.read_csv(results / "sample_efficiency.csv", dtype={"recipe_hash": str})
    lines = {(h, n): r for h, n, r in zip(se["recipe_hash"], se["episodes_per_task"], se["run_rates"])}
    assert lines == {("feedbeef/aaaaaa", 5): "s0:50 s1:50", ("feedbeef/bbbbbb", 5): "s2:50 s4:50",
                     ("feedbeef/cccccc", 1): "s0:50 s1:50", ("feedbeef", 5): "s3:50 s5:50"}


def test_recipe_hashes_are_named_after_the_repository_recipe_that_composes_to_them(tmp_path):
    """A run trained with `+recipe=<name>` records only its recipe's hash; tables name it by composing every
    recipe of vp_agent/conf/recipe with today's code. A hash no recipe composes to stays bare."""
    import json

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import vp_agent.train  # noqa: F401
    from eval.leaderboard import recipe_label, recipe_names
    from eval.policies import training_record

    with initialize_config_module(config_module="vp_agent.conf", version_base=None):
        cfg = compose(config_name="train", overrides=["+recipe=bc-lite-v2", "data=[d]", "seed=3",
                                                      "episodes_per_task=5", "threads=1", "out_dir=x"])
    train_config = OmegaConf.to_container(cfg, resolve=True)
    assert train_config["precision"] == "auto"  # vp-train records what auto resolved to on its machine
    for ran, name in (("bf16", "bc-lite-v2"), ("fp32", "bc-lite-v2 (fp32)")):
        (tmp_path / "config.json").write_text(json.dumps({"policy": "bc", "config": {},
                                                          "train_config": {**train_config, "precision": ran}}))
        digest = training_record(tmp_path)["recipe_hash"]  # as a checkpoint of that recipe records it
        assert recipe_names()[digest] == name and recipe_label(digest) == f"{name}, {digest}"
    assert "vp-pretrained-aeft-lite-v2" in recipe_names().values()
    assert recipe_label("0123abcd") == "0123abcd"


def test_rows_say_which_expert_version_made_them(tmp_path):
    """A row trained on demos of an expert past version 1 (robosuite's Stack v2) says so, and its recipe key
    keeps it from being pooled with seeds trained on the first version's demos; the expert's own row names its
    version. Rows of first-version experts read as before."""
    import json

    from eval.leaderboard import _demos_key, run_method

    def run_dir(name, policy):
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps({"policy": policy}))
        return d

    new = {"spec": "ckpt", "training": {"method": "bc_state", "recipe_hash": "abcd1234", "demo_experts": {"Stack": 2}}}
    old = {"spec": "ckpt", "training": {"method": "bc_state", "recipe_hash": "abcd1234"}}
    assert run_method(run_dir("new", new), "ckpt") == "bc_state (demos: Stack v2 expert)"
    assert run_method(run_dir("old", old), "ckpt") == "bc_state"
    assert _demos_key(new["training"]) == "/demos:Stack-v2" and _demos_key(old["training"]) == ""
    assert run_method(run_dir("expert", {"spec": "expert", "expert_versions": {"Stack": 2}}), "expert") \
        == "expert (Stack v2)"
    assert run_method(run_dir("expert1", {"spec": "expert"}), "expert") == "expert"
