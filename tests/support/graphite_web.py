"""Serve Debian's graphite-web on loopback with a settings module of its own.

Run by tests/support/graphite_peer.py with Debian's ``/usr/bin/python3
-I`` (the interpreter graphite-web is packaged for, isolated from the tests'
virtualenv and from this folder): ``graphite_web.py WORKDIR PORT``.
WORKDIR holds ``graphite_test_settings.py``; the settings never touch
/etc/graphite or /var/lib/graphite. The Django database (SQLite, which
holds the tag index of tagged series) is created in WORKDIR before the
port opens, so a server that answers is a server that works.
"""

import importlib.util
import os
import socketserver
import sys
from wsgiref import simple_server

SETTINGS = 'graphite_test_settings'


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _load_settings(workdir):
    """Import WORKDIR's settings module by its path, for graphite's
    settings to find it by name (isolated mode keeps WORKDIR off the
    path)."""
    spec = importlib.util.spec_from_file_location(
        SETTINGS, os.path.join(workdir, SETTINGS + '.py'))
    module = importlib.util.module_from_spec(spec)
    sys.modules[SETTINGS] = module
    spec.loader.exec_module(module)


def main(workdir, port):
    _load_settings(workdir)
    os.environ['GRAPHITE_SETTINGS_MODULE'] = SETTINGS
    os.environ['DJANGO_SETTINGS_MODULE'] = 'graphite.settings'
    import django
    from django.core import management
    django.setup()
    management.call_command('migrate', interactive=False, verbosity=0)
    # The tag index lives in this database: in SQLite's default journal
    # mode, carbon's index updates lock queries out, which then fail after
    # 5 s with "database is locked" (test_graphite shows it); in WAL mode
    # queries read while the index is written. The mode stays with the file.
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute('PRAGMA journal_mode=WAL')
    connection.close()
    from graphite.wsgi import application
    server = simple_server.make_server(
        '127.0.0.1', int(port), application, server_class=_ThreadingServer,
        handler_class=_QuietHandler)
    server.serve_forever()


if __name__ == '__main__':
    main(*sys.argv[1:3])
