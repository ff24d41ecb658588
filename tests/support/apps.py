"""Paste factories for the test servers, beside the fake monitoring API."""

import logging
import os

LOG_FORMAT = '%(process)d %(levelname)s %(name)s: %(message)s'


def configure_logging(level=logging.INFO):
    """The collector's logs on stderr, which the tests read (gunicorn
    configures only its own loggers). Called before the paste app is
    loaded: the collector logs as soon as its filter is built."""
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger().setLevel(level)


def echo_app_factory(global_conf, **local_conf):
    """A stand-in for MagnetoDB's data API: answers at once with its pid.

    ``debug = true`` turns the collector's DEBUG lines on.
    """
    if local_conf.get('debug'):
        configure_logging(logging.DEBUG)

    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'%d' % os.getpid()]

    return app
