"""Run the live worker in this process under a profiler; write the profile when it stops.

    HOTSPOT_... python bench/profile_worker.py OUT cprofile        # OUT.prof (pstats)
    HOTSPOT_... python bench/profile_worker.py OUT pyinstrument    # OUT.pyisession (sampling, 1 ms)

Used by `bench/pipeline.py --profile`. It is the same code path as `hotspot worker`
(`streams.worker.run_worker`); SIGTERM stops the worker cleanly and the profile is
written on the way out. Both profilers see the main thread (the event loop) only:
the ClickHouse inserts run in `asyncio.to_thread` workers, so they show up as the
loop waiting in `select`, and in the per-thread CPU figures `bench/pipeline.py` prints.

cProfile counts every call and slows the worker about 3-4x, which distorts the
proportions (batches get smaller); pyinstrument samples the stack every
millisecond and distorts far less, so prefer it for "where does the time go".
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    out, kind = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "pyinstrument")
    from core.settings import get_settings
    from streams.worker import run_worker

    settings = get_settings()
    if kind == "cprofile":
        import cProfile

        profiler = cProfile.Profile()
        start, stop = profiler.enable, profiler.disable

        def save():
            profiler.dump_stats(out + ".prof")
    else:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")  # plain stack samples of the main thread
        start, stop = profiler.start, profiler.stop

        def save():
            profiler.last_session.save(out + ".pyisession")

    start()
    try:
        run_worker(settings, loglevel="warning")
    except SystemExit:
        pass
    finally:
        stop()
        save()


if __name__ == "__main__":
    main()
