"""Shared timing helper for the pixel-step benchmarks (stock path vs vp_envs, same run)."""


def time_steps(benchmark, step, reset, rounds: int, times: dict, key: str):
    """Benchmark ``step`` (resetting every 100 calls to stay inside episode limits) and store the fastest
    step in ``times[key]``: the least-disturbed step, robust to other load on the machine."""
    counter = {"n": 0}

    def one_step():
        counter["n"] += 1
        if counter["n"] % 100 == 0:
            reset()
        return step()

    result = benchmark.pedantic(one_step, rounds=rounds, iterations=1, warmup_rounds=3)
    times[key] = benchmark.stats.stats.min
    return result


def check_speedup(benchmark, times: dict, target: float, label: str) -> None:
    """Assert the vp_envs step is at least ``target`` times faster than the stock one (same run) and record
    both times and the ratio in the benchmark JSON."""
    import pytest

    if set(times) != {"stock", "vp_envs"}:
        pytest.skip("needs both step benchmarks in the same run (benchmarks disabled or deselected)")
    ratio = times["stock"] / times["vp_envs"]
    benchmark.extra_info.update(stock_ms=times["stock"] * 1e3, vp_envs_ms=times["vp_envs"] * 1e3, speedup=ratio)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(f"\n{label}: stock {times['stock'] * 1e3:.1f} ms, vp_envs {times['vp_envs'] * 1e3:.1f} ms, "
          f"speed-up {ratio:.1f}x")
    assert ratio >= target
