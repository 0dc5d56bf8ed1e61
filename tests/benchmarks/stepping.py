"""Shared timing helpers for the pixel-step benchmarks (stock path vs vp_envs, same run).

Each path has its own benchmark (``time_steps``: its step-time table in pytest-benchmark's report), and the
ratio test times both again *interleaved* (``check_speedup``): one stock step, one vp_envs step, repeated, so
both see the same machine. Timed one after the other, the fastest vp_envs robosuite step moved between 18 and
29 ms from process to process on a 2-core machine (Python-bound controller physics under other load), which
put the measured ratio anywhere from 2.3x to 4.9x; interleaved, both sides share each slow spell.
"""

import time


def time_steps(benchmark, step, reset, rounds: int):
    """Benchmark ``step`` (resetting every 100 calls to stay inside episode limits) for the report."""
    counter = {"n": 0}

    def one_step():
        counter["n"] += 1
        if counter["n"] % 100 == 0:
            reset()
        return step()

    return benchmark.pedantic(one_step, rounds=rounds, iterations=1, warmup_rounds=3)


def interleaved_fastest(paths: dict, rounds: int, warmup: int = 3) -> dict[str, float]:
    """Fastest step, in seconds, of each path, timed alternately: ``paths`` maps a name to ``(step, reset,
    before)``, where ``before`` (or None) runs untimed before each of that path's steps (e.g. to make its GL
    context current again after the other path rendered). Resets every 100 steps, untimed."""
    fastest = {name: float("inf") for name in paths}
    for i in range(warmup + rounds):
        for name, (step, reset, before) in paths.items():
            if i and i % 100 == 0:
                reset()
            if before is not None:
                before()
            t0 = time.perf_counter()
            step()
            elapsed = time.perf_counter() - t0
            if i >= warmup:
                fastest[name] = min(fastest[name], elapsed)
    return fastest


def check_speedup(benchmark, paths: dict, rounds: int, target: float, label: str) -> None:
    """Time the ``stock`` and ``vp_envs`` paths interleaved (:func:`interleaved_fastest`), record both fastest
    steps and their ratio in the benchmark JSON, and assert the vp_envs step is at least ``target`` times
    faster."""
    times = interleaved_fastest(paths, rounds)
    ratio = times["stock"] / times["vp_envs"]
    benchmark.extra_info.update(stock_ms=times["stock"] * 1e3, vp_envs_ms=times["vp_envs"] * 1e3, speedup=ratio)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{label}: stock {times['stock'] * 1e3:.1f} ms, vp_envs {times['vp_envs'] * 1e3:.1f} ms, "
          f"speed-up {ratio:.1f}x (fastest of {rounds} interleaved steps each)")
    assert ratio >= target, f"{label}: {ratio:.2f}x < {target}x (stock {times['stock'] * 1e3:.1f} ms, " \
                            f"vp_envs {times['vp_envs'] * 1e3:.1f} ms)"
