"""The leaderboard: every ``results/**/episodes.parquet`` summarised into one table, one CSV and bar charts.

``vp-leaderboard [--results results] [--out results]`` writes

- ``LEADERBOARD.md``: per protocol, one row per policy: success per split with its 95% Wilson interval,
  the mean over splits, and each shift split's drop from ``test`` (percentage points);
- ``leaderboard.csv``: the same numbers, one line per (protocol, policy, split), with the counts they come
  from (``episodes``, ``successes``), so each is recomputable by hand from the parquet rows;
- ``<protocol>_success.png``: success per split, one bar per policy, Wilson intervals as error bars;
- ``<protocol>_drop.png``: each policy's drop from ``test`` per shift split (complete and partial runs);
- ``<protocol>_sample_efficiency.png`` and ``sample_efficiency.csv``: ``test`` success against demonstrations
  per task, one line per (method, training recipe), from the runs whose manifest records how the checkpoint
  was trained (``vp-train ... episodes_per_task=N seed=S``, evaluated with ``splits=[test]`` or fully).

How the numbers are made (all from the rows, nothing else):

- a split's success rate pools every episode of that split over the protocol's tasks (so ``new_task`` is
  over the held-out tasks only); an episode with an ``error`` counts as a failure;
- ``mean`` is the unweighted mean of the split rates (each split counts once, whatever its task count);
- ``drop`` of a split is ``rate(test) - rate(split)`` in points; ``new_task`` runs on other tasks than
  ``test``, so its drop mixes task difficulty with novelty and is shown for reference;
- rows are grouped by (protocol, protocol version, protocol sha256, policy, checkpoint hash): results of
  different protocol files or weights are never pooled. If the same episode key appears in two files of the
  same group, the first file (sorted path) wins and a warning names both;
- rows rendered before a fix that changed what the frames show (``render_version`` below
  ``vp_envs.RENDER_VERSION`` for a suite in ``vp_envs.RENDER_V1_DEFECT_SUITES``; rows without the column are
  version 1) stay visible but under their own protocol label, ``<protocol>.render-v1``, with a note saying
  what the defect did: they are never ranked beside rows made after the fix;
- ``same as test``: for each perceptual split (which starts episode i from the very state of ``test``
  episode i), the share of episodes with the ``test`` episode's outcome and step count and a return within 1%
  of it: 100% means the shift changed nothing the policy did, the mark of a policy that does not read the
  image (a deterministic policy that ignores pixels gives exactly 100%; one that reads them barely gives
  equal returns).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from eval.runner import atomic_write_bytes
from vp_envs.stats import wilson_interval

log = logging.getLogger("vp-leaderboard")
GROUP = ["protocol", "protocol_version", "protocol_sha256", "policy", "checkpoint_hash"]
KEY = ["task", "split", "level", "episode"]
SPLIT_ORDER = ["train", "test", "camera", "lighting", "texture", "distractor", "position", "new_task"]
REFERENCE_SPLIT = "test"
PERCEPTUAL_SPLITS = ["camera", "lighting", "texture", "distractor"]  # same initial states as `test`
SAME_RETURN_RTOL = 0.01  # "same" episode: same success and steps, return within 1%
PRE_FIX_SUFFIX = ".render-v1"
PRE_FIX_NOTE = (
    "Rows made before render version 2: Meta-World frames drew the objects and goal markers that 33 tasks "
    "place at reset by editing the model (doors, drawers, buttons, faucets, goal sites, among them the puck "
    "goals of reach, push and pick-place) at the model file's default place, not where the episode put them, so "
    "the images carried no object or goal position for those tasks (for button-press-topdown, two different "
    "episodes gave the same first frame). Kept for the record; not comparable with rows made after the fix.")


def load_rows(results: Path) -> pd.DataFrame:
    """All episode rows under ``results``, with the file each came from (column ``source``)."""
    frames = []
    for path in sorted(results.rglob("episodes.parquet")):
        frame = pd.read_parquet(path)
        frame["source"] = str(path)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=GROUP + KEY + ["success", "error", "source"])
    rows = label_split_versions(label_pre_fix(pd.concat(frames, ignore_index=True)))
    rows["method"] = rows["source"].map({src: run_method(Path(src).parent, pol) for src, pol in
                                         rows.groupby("source")["policy"].first().items()})
    dup = rows.duplicated(GROUP + KEY, keep="first")
    if dup.any():
        for (_, row) in rows[dup].head(5).iterrows():
            log.warning("duplicate episode %s in %s; keeping the first file's row",
                        tuple(row[k] for k in KEY), row["source"])
        rows = rows[~dup]
    return rows


def run_manifest(source: str | Path) -> dict:
    """The ``manifest.json`` beside a run's ``episodes.parquet`` (``source``), or ``{}`` when it is missing or
    unreadable. Not cached: a leaderboard rebuild must see runs that were extended meanwhile."""
    try:
        manifest = json.loads((Path(source).parent / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def run_training(source: str | Path) -> dict | None:
    """The training record of a run's checkpoint (``eval.policies.training_record``), if its manifest has one."""
    policy = run_manifest(source).get("policy")
    return policy.get("training") if isinstance(policy, dict) else None


def _experts_label(versions: dict) -> str:
    """``{"Stack": 2}`` -> ``Stack v2``: the scripted experts past version 1 behind a row."""
    return ", ".join(f"{t} v{v}" for t, v in sorted(versions.items()))


def _demos_key(training: dict) -> str:
    """``/demos:Stack-v2`` when the demos came from an expert past version 1, else ``""``: appended to a recipe
    hash so that runs trained on two versions of the demos are never pooled as seeds of one recipe."""
    versions = training.get("demo_experts") or {}
    return ("/demos:" + ",".join(f"{t}-v{v}" for t, v in sorted(versions.items()))) if versions else ""


def run_method(run_dir: Path, policy: str) -> str:
    """The method of a run: ``expert`` / ``random`` for the references, else the trained method its
    ``manifest.json`` records (``bc``, ``bc_state``, ``diffusion``, ``video_policy``), else ``other``."""
    if policy in ("expert", "random"):
        versions = (run_manifest(run_dir / "episodes.parquet").get("policy") or {}).get("expert_versions")
        return policy + (f" ({_experts_label(versions)})" if versions else "")
    training = run_training(run_dir / "episodes.parquet") or {}
    method = training.get("method")
    if method:
        inference = training.get("inference") or {}
        return (str(method) + (f" ({training['image_ablation']} image)" if training.get("image_ablation") else "")
                + (f" (demos: {_experts_label(training['demo_experts'])} expert)"
                   if training.get("demo_experts") else "")
                + (" (" + ", ".join(f"{k}={v}" for k, v in inference.items()) + ")" if inference else "")
                + (f" {TRAIN_MODE_MARK}" if evaluated_in_training_mode(run_dir / "episodes.parquet") else ""))
    try:  # runs made before the record had the method: read the checkpoint's own config
        from eval.policies import checkpoint_method

        return checkpoint_method(json.loads((Path(policy) / "config.json").read_text())) or "other"
    except (OSError, ValueError):
        return "other"


TRAIN_MODE_MARK = "(eval in train mode)"
TRAIN_MODE_NOTE = (
    f"Methods marked `{TRAIN_MODE_MARK}`: until vp-bench 0.4 `vp-eval` stored a checkpoint's training record in "
    "`policy.training`, which is torch's train/eval flag, so the loaded policy acted in training mode: a random "
    "crop instead of the centre crop (BC and Diffusion Policy with `crop` > 0) and Video Policy's conditioning "
    "dropout (text and frame dropped for 10% of chunks). Their rows are kept as measured; they understate the "
    "policy. Runs of checkpoints without crop or dropout (every metaworld-lite-v2 row) were not affected.")


def evaluated_in_training_mode(source: str | Path) -> bool:
    """Whether a run's policy acted in torch's training mode with an effect on its actions: a vp_agent
    checkpoint with a random crop or conditioning dropout, evaluated by a session from before the fix (one
    whose manifest entry has no ``inference_mode``)."""
    manifest = run_manifest(source)
    training = run_training(source)
    if not isinstance(training, dict) or all(s.get("inference_mode") for s in manifest.get("sessions", [])):
        return False
    policy = (training.get("recipe") or {}).get("policy") or {}
    name, config = policy.get("name"), policy.get("config") or {}
    if name in ("bc", "diffusion"):
        return bool(config.get("crop", 58)) and bool(config.get("use_image", True))  # 58: their default crop
    return name == "video_policy" and float(config.get("cond_dropout", 0.1)) > 0


def label_pre_fix(rows: pd.DataFrame) -> pd.DataFrame:
    """Move rows rendered with the Meta-World defect (render version 1) to ``<protocol>.render-v1``."""
    import vp_envs

    rows = rows.copy()
    version = rows["render_version"] if "render_version" in rows else pd.Series(float("nan"), index=rows.index)
    rows["render_version"] = version.fillna(1).astype(int)
    suite = rows["suite"] if "suite" in rows else pd.Series("", index=rows.index)
    stale = suite.isin(vp_envs.RENDER_V1_DEFECT_SUITES) & (rows["render_version"] < 2)
    rows.loc[stale, "protocol"] = rows.loc[stale, "protocol"] + PRE_FIX_SUFFIX
    return rows


SPLIT_VERSION_NOTE = (
    "A split named `<split> (vN)` was drawn under version N of its definition, older than the one vp-envs ships "
    "(`version` in `vp_envs/splits/<suite>.yaml`): Meta-World's `position` version 1 also widened near-fixed "
    "coordinates (2 mm heights: fixtures floated or sank) and accepted draws whose only out-of-range coordinate "
    "the task ignores. Such rows are kept as measured and never pooled with the current split; the same "
    "`vp-eval` command on the run folder re-runs them (the old rows move to `episodes_superseded.parquet`).")


def label_split_versions(rows: pd.DataFrame) -> pd.DataFrame:
    """Rename the split of rows drawn under an older definition of their split (``split_version``, e.g.
    ``position`` before Meta-World's version 2 stopped widening near-fixed heights) to ``<split> (v<N>)``, so
    a table never pools or compares them with rows of the current definition."""
    from eval.runner import current_split_version

    rows = rows.copy()
    version = rows["split_version"] if "split_version" in rows else pd.Series(float("nan"), index=rows.index)
    rows["split_version"] = version.fillna(1).astype(int)
    for (suite, split), g in rows.groupby(["suite", "split"]):
        current = current_split_version(str(suite), str(split))
        old = g.index[g["split_version"] != current] if current is not None else g.index[:0]
        rows.loc[old, "split"] = [f"{split} (v{v})" for v in rows.loc[old, "split_version"]]
    return rows


def same_as_test(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (protocol, policy, checkpoint) and perceptual split: how many episodes repeat their ``test``
    episode (same success and steps, return within ``SAME_RETURN_RTOL``; see the module docstring)."""
    out = []
    outcome = ["success", "steps", "return"]
    for group, g in rows.groupby(GROUP, sort=True):
        test = g[g["split"] == REFERENCE_SPLIT].set_index(["task", "episode"])[outcome]
        if test.empty:
            continue
        for split in PERCEPTUAL_SPLITS:
            shifted = g[g["split"] == split].set_index(["task", "episode"])[outcome]
            both = shifted.join(test, rsuffix="_test", how="inner")
            if both.empty:
                continue
            same = (both["success"].astype(bool) == both["success_test"].astype(bool)) \
                & (both["steps"] == both["steps_test"]) \
                & ((both["return"] - both["return_test"]).abs() <= SAME_RETURN_RTOL * both["return_test"].abs() + 1e-9)
            out.append({**dict(zip(GROUP, group)), "split": split, "episodes": len(both),
                        "same_as_test": int(same.sum())})
    return pd.DataFrame(out)


def _run_key(source: str, g: pd.DataFrame) -> str:
    """What makes two runs the same experiment: the training record (method, recipe, demos, seed) when the
    run's manifest has one, else the policy spec (expert, random, ...)."""
    training = run_training(source)
    if training and training.get("recipe_hash"):
        extra = " + action-free video" if training.get("action_free_data") else ""
        return (f"{METHOD_NAMES.get(training['method'], training['method'])} (recipe {training['recipe_hash']}"
                f"{_demos_key(training)}, "
                f"{training.get('episodes_per_task')} demos/task, seed {training.get('seed')}{extra})")
    return f"`{g['policy'].iloc[0]}`"


def render_fix_comparison(rows: pd.DataFrame, heading_level: int = 2) -> str:
    """Before and after the render fix, per experiment run under both: the success rate of each split both
    runs hold (episodes pooled over the protocol's tasks, 95% Wilson interval), before -> after."""
    lines = []
    for proto in sorted(p for p in rows["protocol"].unique() if p.endswith(PRE_FIX_SUFFIX)):
        new = proto.removesuffix(PRE_FIX_SUFFIX)
        runs: dict[str, dict[str, pd.DataFrame]] = {}
        for (label, source), g in rows[rows["protocol"].isin([proto, new])].groupby(["protocol", "source"]):
            edition = "before" if label == proto else "after"
            runs.setdefault(_run_key(source, g), {}).setdefault(edition, []).append(g)
        tables = []
        for key, both in sorted(runs.items()):
            if set(both) != {"before", "after"}:
                continue
            before, after = pd.concat(both["before"]), pd.concat(both["after"])
            splits = sorted(set(before["split"]) & set(after["split"]), key=_split_sort)
            tasks = sorted(set(before.loc[before["split"] == REFERENCE_SPLIT, "task"])
                           & set(after.loc[after["split"] == REFERENCE_SPLIT, "task"]))
            header = ["", *[f"`{x}`" for x in splits], *[f"`test` {t.removesuffix('-v3')}" for t in tasks]]
            table = [f"**{key}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for edition, g in (("before", before), ("after", after)):
                ok = g["success"].astype(bool) & (g["error"].fillna("") == "")
                cells = []
                for split in splits:
                    cell = ok[g["split"] == split]
                    lo, hi = wilson_interval(int(cell.sum()), len(cell))
                    cells.append(f"{100 * cell.mean():.0f} [{100 * lo:.0f}, {100 * hi:.0f}]")
                for task in tasks:
                    cells.append(f"{100 * ok[(g['split'] == REFERENCE_SPLIT) & (g['task'] == task)].mean():.0f}")
                table.append(f"| {edition} | " + " | ".join(cells) + " |")
            tables += table + [""]
        if tables:
            lines += [f"{'#' * heading_level} {new}: before and after the render fix", "",
                      f"The same experiment (same training recipe, demos and seed; or the same scripted policy) run "
                      f"under `{proto}` (before) and `{new}` (after): success % per split with its 95% Wilson "
                      f"interval, then `test` success % per task.", "", *tables]
    if not lines:
        return ""
    return ("\n# Render fix: before and after\n\n" if heading_level == 2 else "") + "\n".join(lines)


def headline(rows: pd.DataFrame) -> str:
    """One table for the README: per current protocol, each complete run's ``test`` success (95% Wilson)
    and its mean over splits, best mean first. Runs of a ``.render-v1`` label are left out."""
    complete, _ = complete_runs(rows[~rows["protocol"].str.endswith(PRE_FIX_SUFFIX)])
    summary = summarise(complete)
    if summary.empty:
        return "No complete runs yet.\n"
    lines = ["| protocol | method | policy | `test` | mean over splits |", "|---|---|---|---|---|"]
    for (proto, version), p in summary.groupby(["protocol", "protocol_version"], sort=True):
        by_run = []
        for (policy, ckpt), q in p.groupby(["policy", "checkpoint_hash"], sort=True):
            q = q.set_index("split")
            t = q.loc[REFERENCE_SPLIT]
            name = f"`{policy}`" + (f" ({ckpt[:8]})" if policy not in ("expert", "random") else "")
            method = q["method"].iloc[0] if "method" in q else ""
            label = proto if proto.endswith(f"-v{version}") else f"{proto} v{version}"
            by_run.append((q.loc["mean"].success_rate, f"| {label} | {method} | {name} | {_pct(t.success_rate)} "
                                                        f"[{_pct(t.ci95_low)}, {_pct(t.ci95_high)}] | "
                                                        f"{_pct(q.loc['mean'].success_rate)} |"))
        lines += [line for _, line in sorted(by_run, key=lambda x: -x[0])]
    return "\n".join(lines) + "\n"


PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "published" / "metaworld_image_diffusion_policy.csv"


def per_task_table(rows: pd.DataFrame, protocol: str = "metaworld-lite-v2",
                   published: Path | None = PUBLISHED, full_data: bool = False) -> str:
    """``test`` success % per training task of ``protocol`` for each run that holds every ``test`` episode
    (method, demonstrations per task and training seed where the checkpoint records them, checkpoint; a run
    of ``test`` only is marked so), with the published per-task numbers of
    image-based Diffusion Policy beside them (``results/published/``). ``full_data``: only runs trained on the
    largest demonstration budget of the protocol's runs, or not recording one (the README's short version;
    the sample-efficiency runs stay in docs/results.md)."""
    from eval.protocol import ProtocolError, load_protocol

    every = rows[rows["protocol"] == protocol] if not rows.empty else rows
    rows = every[every["split"] == REFERENCE_SPLIT] if not every.empty else every
    expected = int(rows.groupby(["policy", "checkpoint_hash"]).size().max()) if not rows.empty else 0
    total = int(every.groupby(["policy", "checkpoint_hash"]).size().max()) if not every.empty else 0
    try:
        episodes = load_protocol(protocol).episodes()
        expected, total = sum(1 for e in episodes if e.split == REFERENCE_SPLIT), len(episodes)
    except (ProtocolError, FileNotFoundError):
        pass
    sizes = every.groupby(["policy", "checkpoint_hash"]).size() if not every.empty else {}
    whole = [g for _, g in rows.groupby(["policy", "checkpoint_hash"], sort=True) if len(g) >= expected] \
        if not rows.empty else []
    if full_data and whole:
        budgets = [(run_training(g["source"].iloc[0]) or {}).get("episodes_per_task") if "source" in g else None
                   for g in whole]
        largest = max((b for b in budgets if b), default=None)
        whole = [g for g, b in zip(whole, budgets) if b in (None, largest)]
    if not whole:
        return f"No runs with every `test` episode of {protocol} yet.\n"
    complete = pd.concat(whole)
    ok = complete["success"].astype(bool) & (complete["error"].fillna("") == "")
    test = complete.assign(ok=ok)
    tasks = list(dict.fromkeys(test["task"]))
    ref = {}
    if published is not None and Path(published).is_file():
        pub = pd.read_csv(published)
        ref = dict(zip(pub["task"], pub["success_rate"]))
    runs = []
    for (policy, ckpt), g in test.groupby(["policy", "checkpoint_hash"], sort=True):
        method = str(g["method"].iloc[0]) if "method" in g else ""
        training = (run_training(g["source"].iloc[0]) or {}) if "source" in g else {}
        budget = (f", {training['episodes_per_task']} demos s{training.get('seed')}"
                  if training.get("episodes_per_task") else "")
        name = method if policy in ("expert", "random") else f"{method}{budget} ({ckpt[:8]})"
        name += "" if sizes[(policy, ckpt)] >= total else " (test only)"
        runs.append((g["ok"].mean(), name, g.groupby("task")["ok"].mean()))
    runs.sort(key=lambda r: -r[0])
    header = ["task"] + [name for _, name, _ in runs] + ["published image DP (10 demos)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in tasks:
        cells = [_pct(by_task.get(task)) for _, _, by_task in runs]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {_pct(ref.get(task))} |")
    mean_ref = [ref[t] for t in tasks if t in ref]
    lines.append("| **all** | " + " | ".join(f"**{_pct(rate)}**" for rate, _, _ in runs)
                 + f" | {_pct(sum(mean_ref) / len(mean_ref)) if mean_ref else ''} (of {len(mean_ref)} tasks) |")
    return "\n".join(lines) + "\n"


OFFLINE = Path(__file__).resolve().parents[1] / "results" / "offline"


def offline_table(rows: pd.DataFrame | None = None, folder: Path = OFFLINE, pattern: str = "*-lite-v2*.json") -> str:
    """The offline scores (``python -m vp_agent.offline``) committed under ``results/offline`` for one
    protocol's held-out windows, one row per JSON: action error (generated video and, for Video Policy, the
    real future: the error split), video PSNR against the autoencoder's ceiling, and the image-use check.
    ``rows`` is unused (README blocks share one signature)."""
    import json

    def num(value, digits=4):
        return "" if value is None else f"{value:.{digits}f}"

    lines = ["| file | checkpoint | settings | windows | action error | action error, real future "
             "| video PSNR (dB) | autoencoder ceiling (dB) | noise image | other state |",
             "|" + "---|" * 10]
    files = sorted(Path(folder).glob(pattern))
    for path in files:
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # shown, not dropped: a table that silently loses a row misleads
            lines.append(f"| `{path.name}` | unreadable: {type(exc).__name__} |" + " |" * 8)
            continue
        use = d.get("image_use") or {}
        settings = ", ".join(f"{k}={v}" for k, v in (d.get("overrides") or {}).items()) or "as trained"
        lines.append(f"| `{path.name}` | `{d.get('checkpoint', '')}` | {settings} | {d.get('windows', '')} "
                     f"| {num(d.get('action_mse'))} | {num(d.get('action_mse_real_future'))} "
                     f"| {num(d.get('video_psnr'), 1)} | {num(d.get('recon_psnr'), 1)} "
                     f"| {num(use.get('noise_image'), 3)} | {num(use.get('shuffled_state'), 3)} |")
    if not files:
        return f"No offline scores matching {pattern} in {folder}.\n"
    return "\n".join(lines) + "\n"


PROBES = Path(__file__).resolve().parents[1] / "results" / "probes"


def probe_table(rows: pd.DataFrame | None = None, folder: Path = PROBES, pattern: str = "rs2-vp*.csv") -> str:
    """The linear probes (``python -m eval.probe``) committed under ``results/probes``: one row per checkpoint
    and feature set (trained weights only; the frame's own pixels once), one column per task object, each cell
    the cross-validated mean error in cm with R^2 in brackets; the last row is the error of guessing the mean
    layout. A checkpoint probed in several files keeps the numbers of the last file in the order of their stems
    (rs2-vp before rs2-vp-ae8). ``rows`` is unused."""
    files = sorted(Path(folder).glob(pattern), key=lambda p: p.stem)  # rs2-vp before rs2-vp-ae8
    frames, need = [], {"checkpoint", "encoder", "features", "task", "object", "r2", "err_cm", "spread_cm"}
    for path in files:
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:  # shown, not dropped
            return f"Probe file {path} is unreadable: {type(exc).__name__}: {exc}\n"
        if not need <= set(frame.columns):
            return f"Probe file {path} is unreadable: no columns {', '.join(sorted(need - set(frame.columns)))}\n"
        frames.append(frame)
    if not frames:
        return f"No probes matching {pattern} in {folder}.\n"
    df = pd.concat(frames, ignore_index=True)
    df = df[df["encoder"] != "random-init"].drop_duplicates(["checkpoint", "features", "task", "object"], keep="last")
    df = df.assign(column=df["task"] + " " + df["object"], reference=df["encoder"] != "none")
    df = df.sort_values("reference", kind="stable")  # the frame's own pixels first, then files in name order
    columns = list(dict.fromkeys(df["column"]))
    lines = ["| checkpoint | features | " + " | ".join(columns) + " |", "|" + "---|" * (2 + len(columns))]
    for (ckpt, feats), g in df.groupby(["checkpoint", "features"], sort=False):
        cell = {r.column: f"{r.err_cm:.1f} ({r.r2:.2f})" for r in g.itertuples()}
        name = str(ckpt).removeprefix("runs/train/").removesuffix("/checkpoints/last")
        lines.append(f"| `{name}` | {feats} | " + " | ".join(cell.get(c, "") for c in columns) + " |")
    spread = df.groupby("column")["spread_cm"].first()
    lines.append("| (guessing the mean layout) | | " + " | ".join(f"{spread[c]:.1f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


README_BLOCKS = {"render-fix": lambda rows: render_fix_comparison(rows, heading_level=3), "headline": headline,
                 "v2-per-task": per_task_table, "v2-offline": offline_table,
                 "v2-per-task-full-data": lambda rows: per_task_table(rows, full_data=True),
                 "v2-sample-efficiency": lambda rows: sample_efficiency_block(rows), "rs2-probe": probe_table}


def readme_block(name: str, rows: pd.DataFrame) -> str:
    """The generated text of README block ``name`` (between ``<!-- vp-leaderboard:name -->`` and
    ``<!-- /vp-leaderboard:name -->``)."""
    return README_BLOCKS[name](rows).strip() + "\n"


def update_readme(path: Path, rows: pd.DataFrame) -> list[str]:
    """Rewrite every generated block of the README at ``path`` from ``rows``; returns the names updated."""
    import re

    text, done = path.read_text(), []
    for name in README_BLOCKS:
        pattern = re.compile(rf"(<!-- vp-leaderboard:{name} -->\n).*?(<!-- /vp-leaderboard:{name} -->)", re.S)
        if pattern.search(text):
            block = readme_block(name, rows)
            text = pattern.sub(lambda m: m.group(1) + block + m.group(2), text)
            done.append(name)
    atomic_write_bytes(path, lambda tmp: tmp.write_text(text))
    return done


def same_as_test_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    lines = ["", "# Same as `test`", "",
             "Share of each perceptual split's episodes (%) that repeat the `test` episode with the same index",
             "(same outcome and steps, return within 1%): these splits start from `test`'s states and change",
             "only the pixels, so 100% means the shift changed nothing the policy did. Diffusion Policy and Video",
             "Policy draw each chunk's noise from the episode's seed and step, which paired episodes share (rows",
             "made before vp-bench 0.3 drew it from torch's global generator: their episodes differ anyway).", ""]
    for proto, p in table.groupby("protocol", sort=True):
        lines += [f"## {proto}", "", "| policy | " + " | ".join(PERCEPTUAL_SPLITS) + " |",
                  "|---|" + "---|" * len(PERCEPTUAL_SPLITS)]
        for (policy, ckpt), q in p.groupby(["policy", "checkpoint_hash"], sort=True):
            by = q.set_index("split")
            name = f"`{policy}`" + (f" ({ckpt[:8]})" if policy not in ("expert", "random") else "")
            lines.append(f"| {name} | " + " | ".join(
                f"{100 * by.loc[s].same_as_test / by.loc[s].episodes:.0f} ({int(by.loc[s].episodes)})"
                if s in by.index else "-" for s in PERCEPTUAL_SPLITS) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def split_label(split: str, level: int, levels_seen: set[int]) -> str:
    """``camera`` when the protocol runs the split at one level only, else ``camera@L3``."""
    return split if len(levels_seen) <= 1 else f"{split}@L{level}"


def _split_sort(label: str) -> tuple[int, str]:
    base = label.split("@")[0].split(" (v")[0]
    return (SPLIT_ORDER.index(base) if base in SPLIT_ORDER else len(SPLIT_ORDER), label)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (group, split): episodes, successes, rate, Wilson 95% interval, drop from test; plus a
    ``mean`` line per group (unweighted mean of split rates)."""
    out = []
    if rows.empty:
        return pd.DataFrame(columns=GROUP + ["method", "split", "episodes", "successes", "errors", "success_rate",
                                             "ci95_low", "ci95_high", "drop_vs_test"])
    rows = rows.copy()
    rows["ok"] = rows["success"].astype(bool) & (rows["error"].fillna("") == "")
    if "method" not in rows:
        rows["method"] = "other"
    for group, g in rows.groupby(GROUP, sort=True):
        method = str(g["method"].iloc[0])
        levels = g.groupby("split")["level"].agg(lambda s: set(s.astype(int)))
        lines = []
        for (split, level), cell in g.groupby(["split", "level"]):
            n, k = len(cell), int(cell["ok"].sum())
            lo, hi = wilson_interval(k, n)
            lines.append({**dict(zip(GROUP, group)), "method": method, "split": split_label(split, int(level), levels[split]),
                          "episodes": n, "successes": k, "errors": int((cell["error"].fillna("") != "").sum()),
                          "success_rate": k / n, "ci95_low": lo, "ci95_high": hi})
        lines.sort(key=lambda r: _split_sort(r["split"]))
        ref = next((r["success_rate"] for r in lines if r["split"] == REFERENCE_SPLIT), None)
        for line in lines:
            is_shift = line["split"] not in ("train", REFERENCE_SPLIT)
            line["drop_vs_test"] = (ref - line["success_rate"]) if (ref is not None and is_shift) else None
        mean = sum(r["success_rate"] for r in lines) / len(lines)
        lines.append({**dict(zip(GROUP, group)), "method": method, "split": "mean", "episodes": int(sum(r["episodes"] for r in lines)),
                      "successes": int(sum(r["successes"] for r in lines)),
                      "errors": int(sum(r["errors"] for r in lines)), "success_rate": mean,
                      "ci95_low": None, "ci95_high": None, "drop_vs_test": None})
        out.extend(lines)
    return pd.DataFrame(out)


def _pct(x) -> str:
    return "" if x is None or pd.isna(x) else f"{100 * x:.0f}"


def markdown(summary: pd.DataFrame, header: bool = True, images: bool = True) -> str:
    lines = ["# Leaderboard", "",
             "Generated by `vp-leaderboard` from every `results/**/episodes.parquet`; do not edit by hand.",
             "Success rate (%) per split, pooled over the protocol's tasks, with its 95% Wilson interval;",
             "`mean` is the unweighted mean over splits; `drop` is `test` minus the split, in points",
             "(`new_task` runs on held-out tasks, so its drop also reflects task difficulty).",
             "Counts behind every number: `leaderboard.csv`.", ""]
    if not header:
        lines = []
    if summary.empty:
        return "\n".join(lines + ["No results yet.", ""])
    for (proto, version, sha), p in summary.groupby(["protocol", "protocol_version", "protocol_sha256"], sort=True):
        splits = sorted({s for s in p["split"] if s != "mean"}, key=_split_sort)
        shifts = [s for s in splits if s not in ("train", REFERENCE_SPLIT)]
        lines += [f"## {proto} (version {version}, sha256 {sha[:12]})", ""]
        lines += [PRE_FIX_NOTE, ""] if proto.endswith(PRE_FIX_SUFFIX) else []
        lines += [f"![success per split]({proto}_success.png)", ""] if images else []
        lines += ["| policy | " + " | ".join(splits) + " | mean |", "|---|" + "---|" * (len(splits) + 1)]
        drops = ["", f"Drop from `test` (points) for {proto}:", "",
                 *([f"![drop from test]({proto}_drop.png)", ""] if images else []),
                 "| policy | " + " | ".join(shifts) + " |", "|---|" + "---|" * len(shifts)]
        for (policy, ckpt), q in p.groupby(["policy", "checkpoint_hash"], sort=True):
            by = q.set_index("split")
            cells = []
            for s in splits:
                if s not in by.index:  # a partial run without this split
                    cells.append("-")
                    continue
                r = by.loc[s]
                cells.append(f"{_pct(r.success_rate)} [{_pct(r.ci95_low)}, {_pct(r.ci95_high)}]"
                             + (f" ({int(r.errors)} err)" if r.errors else ""))
            name = f"`{policy}`" + (f" ({ckpt[:8]})" if policy not in ("expert", "random") else "")
            if TRAIN_MODE_MARK in str(q["method"].iloc[0]):
                name += f" {TRAIN_MODE_MARK}"
            lines.append(f"| {name} | " + " | ".join(cells) + f" | **{_pct(by.loc['mean'].success_rate)}** |")
            drops.append(f"| {name} | " + " | ".join(
                f"{100 * by.loc[s].drop_vs_test:+.0f}" if s in by.index and pd.notna(by.loc[s].drop_vs_test) else ""
                for s in shifts)
                + " |")
        n_per = p[p["split"] != "mean"]["episodes"]
        lines += (drops if shifts else []) + ["", f"Episodes per split: {int(n_per.min())}-{int(n_per.max())}.", ""]
        if p["method"].astype(str).str.contains(TRAIN_MODE_MARK, regex=False).any():
            lines += [TRAIN_MODE_NOTE, ""]
        if any(" (v" in s for s in splits):
            lines += [SPLIT_VERSION_NOTE, ""]
    return "\n".join(lines)


def _grouped_bars(summary: pd.DataFrame, out: Path, column: str, name: str, ylabel: str, title: str,
                  intervals: bool) -> list[Path]:
    """One figure per protocol: ``column`` (a rate in [0, 1] or points / 100) per split, one bar per policy;
    ``intervals`` adds the Wilson interval as error bars. Saved as ``<protocol>_<name>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    for proto, p in summary[summary[column].notna() & (summary["split"] != "mean")].groupby("protocol", sort=True):
        splits = sorted(set(p["split"]), key=_split_sort)
        policies = sorted(set(zip(p["policy"], p["checkpoint_hash"])))
        width = 0.8 / max(1, len(policies))
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(splits), 3.6))
        x = np.arange(len(splits))
        for j, (policy, ckpt) in enumerate(policies):
            q = p[(p["policy"] == policy) & (p["checkpoint_hash"] == ckpt)].set_index("split")
            def get(c, q=q):
                return np.array([q.loc[s][c] if s in q.index else np.nan for s in splits], dtype=float)

            value = get(column)
            # clip: at 0% and 100% the interval's end equals the rate up to rounding
            err = (100 * np.clip(np.vstack([value - get("ci95_low"), get("ci95_high") - value]), 0, None)
                   if intervals else None)
            ax.bar(x + (j - (len(policies) - 1) / 2) * width, 100 * value, width, label=policy, yerr=err,
                   capsize=2)
        if intervals:
            ax.set_ylim(0, 105)
        else:
            ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, splits, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{proto}: {title}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a bar
        fig.tight_layout()
        path = out / f"{proto}_{name}.png"
        atomic_write_bytes(path, lambda tmp: fig.savefig(tmp, dpi=120))
        plt.close(fig)
        written.append(path)
    return written


def plot(summary: pd.DataFrame, out: Path) -> list[Path]:
    """``<protocol>_success.png``: success per split, one bar per policy, Wilson intervals as error bars."""
    return _grouped_bars(summary, out, "success_rate", "success", "success (%)", "success per split (95% Wilson)",
                         intervals=True)


def plot_drop(summary: pd.DataFrame, out: Path) -> list[Path]:
    """``<protocol>_drop.png``: each policy's drop from ``test`` (points) under each shift split."""
    return _grouped_bars(summary, out, "drop_vs_test", "drop", "drop from test (points)",
                         "success lost under each shift (positive = worse than test)", intervals=False)


METHOD_NAMES = {"bc": "BC", "bc_state": "BC on the privileged state (ceiling)", "diffusion": "Diffusion Policy",
                "diffusion_state": "Diffusion Policy on the privileged state (ceiling)", "video_policy": "Video Policy",
                "video_policy_pretrained": "Video Policy (pretrained video model)"}


def training_runs(rows: pd.DataFrame, split: str = REFERENCE_SPLIT) -> pd.DataFrame:
    """One line per run folder whose ``manifest.json`` records how its checkpoint was trained (see
    ``eval.policies.training_record``) and which holds ``split`` episodes: method, recipe, demonstrations per
    task, seed, and the run's episodes and successes on ``split``. Runs trained with action-free video, image
    ablations and runs under other inference settings are left out (they answer other questions), and so are
    runs holding fewer episodes than they selected (``episodes_total`` in ``manifest.json``: still evaluating)."""
    out = []
    for source, g in rows.groupby("source", sort=True):
        training = run_training(source)
        selected = run_manifest(source).get("episodes_total")
        if isinstance(selected, int) and len(g) < selected:
            continue  # still evaluating (or killed): a rate over the episodes it happened to finish misleads
        g = g[g["split"] == split]
        if (not training or training.get("action_free_data") or training.get("image_ablation")
                or training.get("inference") or not training.get("episodes_per_task") or g.empty):
            continue
        ok = g["success"].astype(bool) & (g["error"].fillna("") == "")
        out.append({"protocol": g["protocol"].iloc[0], "protocol_version": int(g["protocol_version"].iloc[0]),
                    "method": training["method"],
                    "recipe_hash": training["recipe_hash"] + _demos_key(training),
                    "episodes_per_task": int(training["episodes_per_task"]),
                    "seed": training["seed"], "policy": g["policy"].iloc[0], "episodes": len(g),
                    "successes": int(ok.sum()), "source": source,
                    "video_model_sha256": training.get("video_model_sha256") or ""})
    return _split_by_video_model(pd.DataFrame(out))


def _split_by_video_model(runs: pd.DataFrame) -> pd.DataFrame:
    """A recipe names its pretrained video model by folder, not by weights: where runs of one recipe hash
    record two or more different video models (the folder was pretrained again), each model's runs get the
    recipe hash ``<hash>/<first 6 hex of the model's hash>``, so they are never pooled as seeds of one recipe.
    Runs that recorded no hash (trained before it was recorded) keep the bare hash."""
    if runs.empty:
        return runs
    keys = ["protocol", "protocol_version", "method", "recipe_hash"]
    known = runs[runs["video_model_sha256"] != ""]
    mixed = known.groupby(keys)["video_model_sha256"].transform("nunique") > 1
    split = known.index[mixed]
    runs.loc[split, "recipe_hash"] = runs.loc[split, "recipe_hash"] + "/" + runs.loc[split, "video_model_sha256"].str[:6]
    return runs


def _sample_efficiency_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """The training runs of every (method, recipe) trained at two or more budgets or seeds."""
    runs = training_runs(rows)
    if runs.empty:
        return runs
    return runs.groupby(["protocol", "protocol_version", "method", "recipe_hash"]).filter(
        lambda g: g["episodes_per_task"].nunique() >= 2 or g["seed"].nunique() >= 2)


def _sample_efficiency_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One line per (protocol, method, recipe, budget): runs and episodes pooled, 95% Wilson, each run's rate."""
    import numpy as np

    cells = []
    keys = ["protocol", "protocol_version", "method", "recipe_hash", "episodes_per_task"]
    for key, g in runs.groupby(keys, sort=True):
        n, k = int(g["episodes"].sum()), int(g["successes"].sum())
        lo, hi = wilson_interval(k, n)
        g = g.sort_values(["seed", "source"])
        per_run = g["successes"] / g["episodes"]
        # two trainings of one recipe and seed (a retrain) are two runs, not two seeds: say which seed each was
        cells.append({**dict(zip(keys, key)),
                      "runs": len(g), "seeds": g["seed"].nunique(), "episodes": n, "successes": k,
                      "success_rate": k / n, "ci95_low": lo, "ci95_high": hi,
                      "run_rates": " ".join(f"s{s}:{100 * r:.0f}" for s, r in zip(g["seed"], per_run)),
                      "run_std": float(np.std(per_run, ddof=1)) if len(g) > 1 else float("nan")})
    return pd.DataFrame(cells)


_RECIPE_NAMES: dict[str, str] | None = None


def recipe_names() -> dict[str, str]:
    """Recipe hash -> the name of the Hydra recipe (``vp_agent/conf/recipe/<name>.yaml``) that composes to it,
    so tables can say ``vp-lite-v2`` rather than a bare hash. Recipes are composed with the code's current
    defaults; a run made with other settings (an older recipe, command-line overrides) keeps its bare hash.
    Empty when the recipes cannot be composed (vp_agent not importable)."""
    global _RECIPE_NAMES
    if _RECIPE_NAMES is None:
        _RECIPE_NAMES = {}
        try:
            from hydra import compose, initialize_config_module
            from omegaconf import OmegaConf

            import vp_agent.train
            from eval.policies import training_recipe

            folder = Path(vp_agent.train.__file__).parent / "conf" / "recipe"
            with initialize_config_module(config_module="vp_agent.conf", version_base=None):
                for path in sorted(folder.glob("*.yaml")):
                    cfg = OmegaConf.to_container(compose(config_name="train", overrides=[f"+recipe={path.stem}",
                                                                                        "data=[x]"]), resolve=True)
                    if cfg.get("precision") == "auto":  # runs record what auto resolved to (vp_agent.train)
                        for ran, name in (("bf16", path.stem), ("fp32", f"{path.stem} (fp32)")):
                            _RECIPE_NAMES[training_recipe({**cfg, "precision": ran})[1]] = name
                    else:
                        _RECIPE_NAMES[training_recipe(cfg)[1]] = path.stem
        except Exception:  # noqa: BLE001 - names are a convenience; the hash stays the identity
            _RECIPE_NAMES = {}
    return _RECIPE_NAMES


def recipe_label(recipe_hash: str) -> str:
    """``<recipe name>, <hash>`` where a repository recipe composes to the hash, else the hash."""
    name = recipe_names().get(str(recipe_hash).split("/")[0])  # <hash>/<video model>: see _split_by_video_model
    return f"{name}, {recipe_hash}" if name else str(recipe_hash)


def _sample_efficiency_lines(proto: str, p: pd.DataFrame) -> list[str]:
    """Markdown table rows of one protocol's sample-efficiency cells ``p``."""
    lines = ["| protocol | method (recipe) | demos per task | runs | episodes | success | per run |",
             "|---|---|---|---|---|---|---|"]
    for (method, recipe), q in p.groupby(["method", "recipe_hash"], sort=True):
        label = f"{METHOD_NAMES.get(method, method)} ({recipe_label(recipe)})"
        for r in q.sort_values("episodes_per_task").itertuples():
            lines.append(f"| {proto} | {label} | {r.episodes_per_task} | {r.runs} | {r.episodes} | "
                         f"{_pct(r.success_rate)} [{_pct(r.ci95_low)}, {_pct(r.ci95_high)}] | {r.run_rates} |")
    return lines


def sample_efficiency_block(rows: pd.DataFrame, protocol: str = "metaworld-lite-v2") -> str:
    """README block: ``test`` success of every training run of one protocol by (method, recipe, demos per task),
    seeds pooled: the sample-efficiency lines and also recipes trained at one budget only (an ablation, a
    variant), so each can be read beside the others. The plot (``<protocol>_sample_efficiency.png``) keeps
    the recipes trained at two or more budgets or seeds."""
    runs = training_runs(rows)
    runs = runs[runs["protocol"] == protocol] if not runs.empty else runs
    if runs.empty:
        return f"No {protocol} training run with a demonstration budget yet.\n"
    return "\n".join(_sample_efficiency_lines(protocol, _sample_efficiency_cells(runs))) + "\n"


def sample_efficiency(rows: pd.DataFrame, out: Path) -> str:
    """``test`` success against demonstrations per task, for every (method, recipe) trained at two or more
    budgets or with two or more seeds (the seed spread of one budget): a table (pooled over runs and episodes, 95% Wilson; each run's rate and seed beside it),
    ``sample_efficiency.csv`` and ``<protocol>_sample_efficiency.png``."""
    runs = _sample_efficiency_runs(rows)
    if runs.empty:
        return ""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = _sample_efficiency_cells(runs)
    atomic_write_bytes(out / "sample_efficiency.csv",
                       lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    lines = ["", "# Sample efficiency", "",
             "`test` success (%) against demonstrations per task, for each method trained at several budgets (or seeds) with",
             "one recipe (`vp-train ... episodes_per_task=N seed=S`, the first N demos of each task). Pooled over",
             "training runs and episodes with its 95% Wilson interval; each run's own rate, after its seed",
             "(`s<seed>:<%>`), in the last column. Two runs with one seed are two trainings of one recipe and seed.", ""]
    for proto, p in table.groupby("protocol", sort=True):
        lines += [f"![sample efficiency]({proto}_sample_efficiency.png)", "", *_sample_efficiency_lines(proto, p)]
        groups = list(p.groupby(["method", "recipe_hash"], sort=True))
        fig, ax = plt.subplots(figsize=(5.2, 3.4 + 0.16 * len(groups)))
        for k, ((method, recipe), q) in enumerate(groups):
            q = q.sort_values("episodes_per_task")
            label = f"{METHOD_NAMES.get(method, method)} ({recipe_label(recipe)})"
            x, rate = q["episodes_per_task"].to_numpy(), 100 * q["success_rate"].to_numpy()
            err = 100 * np.clip(np.vstack([q["success_rate"] - q["ci95_low"], q["ci95_high"] - q["success_rate"]]),
                                0, None)
            dodge = 1 + 0.04 * (k - (len(groups) - 1) / 2)  # lines side by side at each budget (log x)
            ceiling = method.endswith("_state") or method.endswith("_privileged")  # references: dashed
            ax.errorbar(x * dodge, rate, yerr=err, marker="o", capsize=3, label=label, ls="--" if ceiling else "-")
        ax.set_xscale("log")
        xs = sorted(set(p["episodes_per_task"]))
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # only the budgets are labelled
        ax.set_xlabel("demonstrations per task")
        ax.set_ylabel("test success (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{proto}: sample efficiency (95% Wilson, pooled runs)", fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: never hides a point
        fig.tight_layout()
        atomic_write_bytes(out / f"{proto}_sample_efficiency.png",
                           lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))
        plt.close(fig)
        lines.append("")
    return "\n".join(lines) + "\n"


def video_vs_success(rows: pd.DataFrame, out: Path) -> str:
    """For runs whose rows carry ``video_psnr`` (policies that generate video): does a generated video that
    matches what then happened go with success? Per run: one line per split, one over all splits, and one
    over all splits with each episode's PSNR taken relative to the mean of its (split, task) cell (a shift
    such as ``camera`` lowers every episode's PSNR, and successes come mostly from the easy tasks, so pooling
    raw values mixes "which split / task" with "which episode").
    Markdown table + ``<protocol>_video_vs_success.png``, one panel per run."""
    if "video_psnr" not in rows or rows["video_psnr"].notna().sum() == 0:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scored = rows[rows["video_psnr"].notna()].copy()
    scored["ok"] = scored["success"].astype(bool) & (scored["error"].fillna("") == "")
    lines = ["", "# Generated video against success", "",
             "`video_psnr`: per episode, the mean PSNR (dB) of every generated frame against the frame the robot",
             "then actually produced at that step (`eval/runner.py`). Higher = the imagined future came true.",
             "`all, cell-centred`: each episode's PSNR minus the mean of its (split, task) cell (dB), pooled.",
             "Caveat: an episode ends at its first success, so failures are scored over longer rollouts.", "",
             "| protocol | policy | split | episodes | PSNR, successes | PSNR, failures "
             "| correlation (PSNR, success) |",
             "|---|---|---|---|---|---|---|"]

    def line(proto, name, split, g, col="video_psnr"):
        ok, bad = g[g["ok"]][col], g[~g["ok"]][col]
        corr = (np.corrcoef(g[col], g["ok"].astype(float))[0, 1]
                if g["ok"].nunique() > 1 and g[col].nunique() > 1 else float("nan"))
        fmt = lambda x: f"{x.mean():.1f} (n={len(x)})" if len(x) else "-"  # noqa: E731
        return (f"| {proto} | {name} | {split} | {len(g)} | {fmt(ok)} | {fmt(bad)} | "
                + ("" if np.isnan(corr) else f"{corr:+.2f}") + " |")

    for proto, runs in scored.groupby("protocol", sort=True):
        groups = list(runs.groupby(["policy", "checkpoint_hash"], sort=True))
        cols = min(2, len(groups))
        rows_n = -(-len(groups) // cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols + 1.2, 2.4 * rows_n + 0.4), squeeze=False,
                                 sharex=True)
        rng = np.random.default_rng(0)
        for ax, ((policy, ckpt), g) in zip(axes.flat, groups):
            name = f"`{policy}` ({ckpt[:8]})"
            g = g.assign(centred=g["video_psnr"] - g.groupby(["split", "task"])["video_psnr"].transform("mean"))
            splits = sorted(set(g["split"]), key=_split_sort)
            for split in splits:
                lines.append(line(proto, name, split, g[g["split"] == split]))
            if len(splits) > 1:
                lines.append(line(proto, name, "all", g))
                lines.append(line(proto, name, "all, cell-centred", g, "centred"))
            for split in splits:
                part = g[g["split"] == split]
                ax.scatter(part["video_psnr"], part["ok"].astype(float) + rng.uniform(-0.15, 0.15, len(part)),
                           s=8, alpha=0.6, label=split, color=f"C{_split_sort(split)[0] % 10}")
            ax.set_yticks([0, 1], ["failure", "success"])
            parts = Path(str(policy)).parts
            ax.set_title(parts[-3] if len(parts) >= 3 else str(policy), fontsize=8)
        for ax in axes.flat[len(groups):]:
            ax.axis("off")
        for ax in axes[-1]:
            ax.set_xlabel("generated vs executed video, PSNR (dB)", fontsize=8)
        handles = {h.get_label(): h for ax in axes.flat for h in ax.collections}
        order = sorted(handles, key=_split_sort)
        fig.legend([handles[k] for k in order], order, fontsize=7, loc="center right")
        fig.suptitle(f"{proto}: generated video against success, one panel per run", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1 - 1.1 / fig.get_figwidth(), 1))
        atomic_write_bytes(out / f"{proto}_video_vs_success.png", lambda tmp: fig.savefig(tmp, dpi=110))
        plt.close(fig)
        lines.append(f"| | ![{proto}]({proto}_video_vs_success.png) | | | | | |")
    return "\n".join(lines) + "\n"


def complete_runs(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Keep the groups that hold every episode of their protocol; describe the others.

    A run still in progress (or killed) would otherwise be ranked on the splits it happened to finish.
    The expected count is the shipped protocol's episode list when its hash matches, else the protocol's
    episode count its run recorded (``protocol_episodes_total`` in ``manifest.json``), else the largest
    group of the same protocol hash.
    """
    from eval.protocol import ProtocolError, load_protocol

    keep, notes = [], []
    for group, g in rows.groupby(GROUP, sort=True):
        info = dict(zip(GROUP, group))
        expected = int(rows[rows["protocol_sha256"] == info["protocol_sha256"]].groupby(GROUP).size().max())
        try:
            proto = load_protocol(info["protocol"].removesuffix(PRE_FIX_SUFFIX))
            if proto.sha256 == info["protocol_sha256"]:
                expected = len(proto.episodes())
        except (ProtocolError, FileNotFoundError):
            pass
        for source in g["source"].unique():  # what the run itself knew of its protocol
            recorded = run_manifest(source).get("protocol_episodes_total")
            if isinstance(recorded, int):
                expected = max(expected, recorded)
        if len(g) >= expected:
            keep.append(g)
        else:
            notes.append(f"`{info['policy']}` on {info['protocol']}: {len(g)} of {expected} episodes "
                         f"({g['source'].iloc[0]})")
    return (pd.concat(keep) if keep else rows.iloc[:0]), notes


def build(results: Path = Path("results"), out: Path | None = None) -> pd.DataFrame:
    """Read every parquet under ``results`` and write the three outputs into ``out`` (default: results).
    Incomplete runs are left out of the tables and listed at the end of LEADERBOARD.md."""
    out = out or results
    out.mkdir(parents=True, exist_ok=True)
    all_rows = load_rows(results)
    rows, incomplete = complete_runs(all_rows)
    partial_rows = all_rows[~all_rows.index.isin(rows.index)] if not rows.empty else all_rows
    summary = summarise(rows)
    atomic_write_bytes(out / "leaderboard.csv", lambda tmp: summary.to_csv(tmp, index=False, float_format="%.4f"))
    text = markdown(summary)
    if incomplete:
        text += "\nIncomplete runs, not ranked:\n\n" + "\n".join(f"- {n}" for n in incomplete) + "\n"
        partial = summarise(partial_rows)
        atomic_write_bytes(out / "leaderboard_partial.csv",
                           lambda tmp: partial.to_csv(tmp, index=False, float_format="%.4f"))
        body = markdown(partial, header=False, images=False)
        text += ("\n# Partial runs (only some splits; not ranked)\n\nThe same statistics over the episodes these "
                 "runs hold (`vp-eval ... splits=[...]`, or a run still going). Counts: `leaderboard_partial.csv`.\n\n"
                 + body)
    text += sample_efficiency(all_rows, out)
    text += video_vs_success(all_rows, out)
    if not all_rows.empty and (all_rows["protocol"] == "metaworld-lite-v2").any():
        text += ("\n# metaworld-lite-v2 per task, beside published numbers\n\n`test` success (%) per task of each "
                 "complete run, and image-based Diffusion Policy's published per-task success (Ze et al. 2024, "
                 "Table XVIII; 10 demos, its own camera and training; `results/published/`).\n\n"
                 + per_task_table(all_rows))
    text += render_fix_comparison(all_rows)
    text += same_as_test_markdown(same_as_test(all_rows))
    atomic_write_bytes(out / "LEADERBOARD.md", lambda tmp: tmp.write_text(text))
    if not summary.empty:
        plot(summary, out)
    both = pd.concat([summary, partial]) if incomplete else summary  # the drop plot shows partial runs too
    if not both.empty:
        plot_drop(both, out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vp-leaderboard", description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="folder searched for **/episodes.parquet (default: results)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: --results)")
    parser.add_argument("--readme", type=Path, action="append", default=[],
                        help="also rewrite this Markdown file's generated blocks (<!-- vp-leaderboard:NAME --> ... "
                             "<!-- /vp-leaderboard:NAME -->) from the same rows; repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not args.results.is_dir():
        print(f"vp-leaderboard: error: results folder {str(args.results)!r} does not exist", file=sys.stderr)
        return 2
    summary = build(args.results, args.out)
    out = args.out or args.results
    for path in args.readme:
        names = update_readme(path, load_rows(args.results))
        print(f"vp-leaderboard: {path}: rewrote {', '.join(names) or 'no generated block'}")
    groups = summary.groupby(GROUP).ngroups if not summary.empty else 0
    print(f"vp-leaderboard: {groups} (protocol, policy) group(s) -> {out / 'LEADERBOARD.md'}, "
          f"{out / 'leaderboard.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
