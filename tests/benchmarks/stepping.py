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
