"""Greenthread or native thread: the one place that decides.

magnetodb-api-server monkey-patches the process with eventlet, and there a
background job must be a greenthread that yields to the hub. gunicorn's
sync and gthread workers and uWSGI have no hub: a greenthread would never
run, so the job is a native daemon thread. This module never imports
eventlet into a process that has not already imported it, and never
patches anything.
"""

import sys
import threading
import time


def eventlet_patched():
    """True when eventlet has monkey-patched threads and sockets here."""
    if 'eventlet' not in sys.modules:
        return False
    from eventlet import patcher
    return (patcher.is_monkey_patched('thread')
            and patcher.is_monkey_patched('socket'))


def spawn(function, name):
    """Run ``function()`` in the background; returns a handle to join.

    Under eventlet's patched ``threading`` a Thread is a greenthread, so
    one code path serves both runtimes; the Thread is a daemon so that it
    never keeps a process from exiting.
    """
    thread = new_thread(function, name)
    thread.start()
    return thread


def new_thread(target, name):
    """The daemon Thread :func:`spawn` starts, for a library that starts
    its own (tooz's heartbeat)."""
    thread = threading.Thread(target=_handing_on_signals(target), name=name)
    thread.daemon = True
    return thread


def _handing_on_signals(function):
    """``function``, but a Ctrl-C that lands in it goes to the server.

    A signal's exception is raised in the main thread, and under eventlet
    that is whichever greenthread runs when the signal comes: sometimes
    ours. ``threading`` would print it and end the greenthread, and the
    server would never hear of its Ctrl-C (it would not stop). So, once
    ``function`` has cleaned up, the exception is thrown into the hub, as
    eventlet does for its own greenthreads: it ends up in the main
    greenlet, where the server expects it. A native thread never gets it.
    """
    def run():
        try:
            function()
        except (KeyboardInterrupt, SystemExit):
            if not eventlet_patched():
                raise
            import greenlet
            hub = greenlet.getcurrent().parent
            if hub is None:
                raise
            try:
                hub.throw(*sys.exc_info())
            except greenlet.GreenletExit:
                pass  # the process ends and discards this greenthread
    return run


def join(handle, timeout):
    """Wait at most ``timeout`` seconds for a job of :func:`spawn`.

    Returns whether it ended. Under eventlet 0.40+ on Python 3.13 a green
    ``Thread.join(timeout)`` raises eventlet's Timeout when the time is
    up instead of returning; that is the same answer, and must not kill
    the caller's loop.
    """
    try:
        handle.join(timeout)
    except BaseException as exc:
        timeout_module = sys.modules.get('eventlet.timeout')
        if timeout_module is None or not isinstance(
                exc, timeout_module.Timeout):
            raise
    return not handle.is_alive()


def cooperative_yield():
    """Let other greenthreads (or threads) run during a long computation."""
    time.sleep(0)
