"""Paste factories for the test servers, beside the fake monitoring API."""

import logging
import os


def echo_app_factory(global_conf, **local_conf):
    """A stand-in for MagnetoDB's data API: answers at once with its pid.

    It also sends the collector's logs to stderr, which the tests read,
    because gunicorn configures only its own loggers.
    """
    logging.basicConfig(
        level=logging.DEBUG if local_conf.get('debug') else logging.INFO,
        format='%(process)d %(levelname)s %(name)s: %(message)s')

    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'%d' % os.getpid()]

    return app
