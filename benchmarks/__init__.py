"""The performance figures: each beside its target; exit 1 on a miss.

``python -m benchmarks`` from the repository root (``tox -e bench`` on
CPython 3, ``tox -e kilo-bench`` on CPython 2.7 with a MagnetoDB 2015.1
deployment's libraries), with any interpreter that has the test
dependencies. Every figure is a ratio or a distribution measured within
this one run, because the machines are shared and noisy. The peers are
the tests' own: the quirk-faithful fake monitoring API (served by a
separate process, so that its CPU is not counted), the real Etsy statsd
daemon, and eventlet.wsgi / gunicorn API servers loading a
MagnetoDB-shaped paste ini.

One module per family of figures: request_path (1), cpu (2, 11b and
``--profile``), latency (3, 9), delivery (4, 6, 7), memory (5, 8, 11a,
12); common holds what they share, and children/ the programs they run in
processes of their own.
"""
