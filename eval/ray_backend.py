"""``backend=ray``: the protocol's (task, split, level) cells fanned out as Ray tasks.

Install it with ``pip install -e ".[ray]"``; tested on a local Ray instance (``tests/test_ray_backend.py``:
the same rows as the local runner, and resume after the driver and its workers are killed). On an existing
cluster, ``ray start --head`` on one machine, ``ray start --address=<head>:6379`` on the others, then run
``vp-eval ... backend=ray`` with ``RAY_ADDRESS=<head>:6379`` (``ray.init`` reads it). Each cell runs
as one Ray task with the local :class:`~eval.runner.Runner` (``vector="sync"``, one slot: on a cluster the
parallelism is across tasks) writing into ``<run_dir>/shards/<task>__<split>__L<level>/``; the driver
merges every shard's rows into ``<run_dir>/episodes.parquet`` as cells finish. Resume works per shard, so a
rerun skips finished episodes as the local backend does. The policy is rebuilt from its spec in each task
(a policy object that is not built from a spec cannot be sent).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from eval.policies import Policy
from eval.protocol import Protocol
from eval.runner import KEY, ROW_COLUMNS, RunError, write_rows


def _cell_task(protocol_source: str, spec: str, shard_dir: str, cell: tuple, videos_per_cell: int,
               video_fps: int, retry_errors: bool, render_on_demand: bool = True) -> list[dict]:
    from eval.policies import load_policy_spec
    from eval.protocol import load_protocol
    from eval.runner import Runner

    protocol = load_protocol(protocol_source)
    episodes = [ep for ep in protocol.episodes() if ep.cell == tuple(cell)]
    frame = Runner(protocol, load_policy_spec(spec), Path(shard_dir), num_envs=1, vector="sync",
                   videos_per_cell=videos_per_cell, video_fps=video_fps, retry_errors=retry_errors,
                   progress=False, episodes=episodes, render_on_demand=render_on_demand).run()
    return frame.to_dict("records")


def run_ray(protocol: Protocol, policy: Policy, run_dir: Path, num_envs: int = 2, vector: str = "sync",
            videos_per_cell: int = 2, video_fps: int = 20, retry_errors: bool = False,
            progress: bool = True, render_on_demand: bool = True) -> pd.DataFrame:
    import ray
    from tqdm import tqdm

    if type(policy).__module__ != "eval.policies" and not policy.spec:
        raise RunError("backend=ray rebuilds the policy from its spec in each worker; give a spec string")
    if not ray.is_initialized():  # RAY_ADDRESS set: join that cluster; unset: start a local instance
        num_cpus = os.environ.get("RAY_NUM_CPUS")
        ray.init(include_dashboard=False, log_to_driver=False,
                 **({"num_cpus": int(num_cpus)} if num_cpus and not os.environ.get("RAY_ADDRESS") else {}))
    remote = ray.remote(_cell_task)
    run_dir.mkdir(parents=True, exist_ok=True)
    pending = {}
    for cell in protocol.cells():
        shard = run_dir / "shards" / f"{cell[0]}__{cell[1]}__L{cell[2]}"
        ref = remote.remote(protocol.source, policy.spec, str(shard), cell, videos_per_cell, video_fps,
                            retry_errors, render_on_demand)
        pending[ref] = cell
    rows: list[dict] = []
    with tqdm(total=len(pending), unit="cell", disable=not progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                rows.extend(ray.get(ref))
                write_rows(run_dir / "episodes.parquet", rows)
                bar.update(1)
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    return frame.sort_values(KEY, kind="stable").reset_index(drop=True)
