"""Programs the benchmarks run in processes of their own: the fake
monitoring API (so that its CPU is not the collector's) and the memory
measurements (so that each starts from a clean heap).

Each is run as ``python -m benchmarks.children.<name> ARGS...`` with the
repository root on ``PYTHONPATH``, and prints its figures on stdout.
"""
