"""StatsD gauges of MagnetoDB table statistics, from inside magnetodb-api."""

from magnetodb_statsd_middleware.filter import filter_factory

__all__ = ['filter_factory']
