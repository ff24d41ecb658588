"""Under uWSGI: the collector runs in the workers, never in the master.

uWSGI's master loads the app (unless ``lazy-apps``) and then forks its
workers in C, without Python's fork handlers (unless
``py-call-uwsgi-fork-hooks``). A thread of the master that holds the GIL
at that moment leaves every worker waiting for it forever, and so the
whole API. So the master starts nothing: each worker starts its own
collector right after its fork, through ``uwsgi.post_fork_hook``, which
uWSGI calls in every process it forks; the host lock then elects one
worker, and the others stand by. With ``lazy-apps`` each worker builds
the filter itself, and starts its collector then.

A uWSGI that runs no Python threads (``enable-threads`` off, the default
before uWSGI 2.0.28) keeps the GIL between requests: a collector thread
would run only now and then, inside requests. There nothing is started,
and the caller logs an ERROR that names the setting.

Outside uWSGI every answer here is the neutral one.
"""

try:
    import uwsgi  # exists only inside a uWSGI process
except ImportError:
    uwsgi = None

THREADS_OFF = ('uWSGI runs no Python threads in this process, so the StatsD '
               'collector cannot run and no metrics are sent: set '
               'enable-threads = true in the [uwsgi] section (or '
               '--enable-threads; uWSGI 2.0.28 and later enable it by '
               'default)')


def in_master():
    """True in uWSGI's master (or another process it has not forked as
    a worker): a process that must never run the collector's thread."""
    return uwsgi is not None and uwsgi.worker_id() == 0


def runs_threads():
    """False in a uWSGI process that runs no Python threads."""
    return uwsgi is None or bool(getattr(uwsgi, 'has_threads', True))


def first_process():
    """True in the one process that speaks for the server's setup: the
    master, or worker 1 where each worker loads the app (``lazy-apps``),
    so that a setting's ERROR is logged once, not once per worker."""
    return uwsgi is None or uwsgi.worker_id() <= 1


def start_in_workers(start):
    """Have ``start()`` called in every worker uWSGI forks from now on.

    A hook set before (by the application or ``uwsgidecorators``) still
    runs, first; ``start`` runs in workers only, not in mules or
    spoolers.
    """
    previous = getattr(uwsgi, 'post_fork_hook', None)

    def post_fork_hook():
        if previous is not None:
            previous()
        if uwsgi.worker_id() > 0:
            start()

    uwsgi.post_fork_hook = post_fork_hook
