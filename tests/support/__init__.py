"""What the tests run against: real servers, daemons and peers, the
local users of the lock tests, and the oracles that compute expected
gauges independently of the package.

Imported as ``from tests.support import peers``; a child process gets the
repository root on ``PYTHONPATH`` and runs ``python -m tests.support.X``.
"""
