"""vp_envs.observability: a task is observable from the protocol's camera and size, or the check says why not."""

import csv
from pathlib import Path

import numpy as np
import pytest

from eval.protocol import list_protocols, load_protocol
from eval_helpers import write_protocol
from vp_envs.observability import check_task, main, project

ROOT = Path(__file__).resolve().parents[1]


def test_projection_puts_a_point_in_front_of_the_camera_at_the_image_centre():
    cam_mat = np.eye(3)  # MuJoCo cameras look along their -z axis
    px = project(np.zeros(3), cam_mat, 45.0, np.array([[0.0, 0.0, -1.0], [0.1, 0.0, -1.0]]), 96, 96)
    assert np.allclose(px[0], [48, 48])
    assert px[1][0] > 48 and np.isclose(px[1][1], 48)  # +x is to the right


def test_a_v2_task_is_observable_and_its_object_moves_more_than_eight_pixels():
    reports = {r.point: r for r in check_task("metaworld", "door-open-v3", camera="corner4", image_size=96,
                                              episodes=20)}
    assert reports["object"].status == "ok" and reports["object"].px_span >= 8
    assert reports["object"].drawn_frac >= 0.8
    assert reports["goal"].status == "implied" and reports["goal"].implied_by == "object"


def test_the_same_task_at_the_v1_camera_and_size_is_flagged_too_small():
    reports = {r.point: r for r in check_task("metaworld", "door-open-v3", camera="corner2", image_size=64,
                                              episodes=20)}
    assert reports["object"].status == "too_small" and not reports["object"].ok


def test_cli_exits_non_zero_and_names_the_task_that_is_not_observable(tmp_path, capsys):
    proto = write_protocol(tmp_path, tasks=["faucet-open-v3", "door-open-v3"], splits=["test"],
                           cameras=["corner4"], image_size=96)
    out = tmp_path / "obs.csv"
    assert main(["--protocol", str(proto), "--episodes", "20", "--out", str(out)]) == 1
    assert "not observable at this camera and size: faucet-open-v3" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    assert {r["task"] for r in rows} == {"faucet-open-v3", "door-open-v3"}
    assert main(["--protocol", "no-such-protocol"]) == 2


@pytest.mark.parametrize("name", list_protocols())
def test_every_shipped_protocol_has_its_committed_observability_table(name):
    """`python -m vp_envs.observability --protocol <name> --out results/observability/<name>.csv`."""
    path = ROOT / "results" / "observability" / f"{name}.csv"
    assert path.is_file(), f"run: python -m vp_envs.observability --protocol {name} --out {path.relative_to(ROOT)}"
    proto = load_protocol(name)
    rows = list(csv.DictReader(path.open()))
    assert {r["task"] for r in rows} == set(proto.tasks)
    assert {r["camera"] for r in rows} == {proto.cameras[0]} and {int(r["image_size"]) for r in rows} == {proto.image_size[0]}


@pytest.mark.parametrize("name", ["metaworld-lite-v2", "robosuite-lite-v2"])
def test_the_v2_protocols_pass_their_own_check(name):
    rows = list(csv.DictReader((ROOT / "results" / "observability" / f"{name}.csv").open()))
    assert all(r["status"] in ("ok", "fixed", "implied") for r in rows), [r for r in rows if r["status"] not in ("ok", "fixed", "implied")]
