"""Performance targets of feedbackloop, measured beside a baseline in the same run.

    python -m benchmarks            # every group; writes benchmarks/README.md
    python -m benchmarks ingest     # one group (others keep their last figures)

Each benchmark prints our figure next to a baseline measured on the same machine in the
same run (the database driver's own bulk path or a raw SELECT), as a ratio, and checks
the target from the issue. Targets are reported as PASS or FAIL; they are never asserted
with timers inside the test suite. PostgreSQL benchmarks run when
``FEEDBACKLOOP_TEST_PG_URL`` is set (``make bench`` starts a throwaway server).
"""
