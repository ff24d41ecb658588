"""The tests of magnetodb-statsd-middleware, run by pytest from the
repository root (tox.ini)."""
