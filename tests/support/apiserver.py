"""Serve a paste ini like ``magnetodb-api-server`` does.

``python -m tests.support.apiserver INI PORT`` (the repository root on
``PYTHONPATH``): eventlet monkey-patches everything first,
then the paste app is loaded and served by eventlet.wsgi.
"""

import signal
import sys

import eventlet

eventlet.patcher.monkey_patch(all=True)

import eventlet.wsgi  # noqa: E402
from paste import deploy  # noqa: E402

from tests.support import apps  # noqa: E402


def main(ini, port):
    # Ctrl-C stops the server, as from a terminal, even when this process
    # was started with SIGINT ignored (a background job of a shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    apps.configure_logging()
    app = deploy.loadapp('config:' + ini)
    eventlet.wsgi.server(eventlet.listen(('127.0.0.1', int(port))), app,
                         log_output=False)


if __name__ == '__main__':
    main(*sys.argv[1:3])
