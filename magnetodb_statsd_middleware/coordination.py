"""One emitter of table metrics per cluster, elected through a tooz lock.

Every host's collector reads the same cluster-wide listing, and every
listing makes MagnetoDB read statistics of every table from Cassandra: N
hosts would multiply that load by N. With ``coordination_url`` set, only
the process holding the cluster lock reads and sends table metrics; a
heartbeat keeps the lock alive, and a holder that dies loses it when the
backend's lock timeout expires (``?timeout=N`` in a redis or memcached
URL).

When the backend cannot be reached, does not answer within
``request_timeout``, or has lost the lock or a group membership of this
process (restarted empty), this process stands down: table metrics are
sent only while the lock is provably held, never by two hosts at once. It
tries again every interval, with the same coordinator: nothing is stopped
or left against a backend that is gone, which would only fail again, and
a lock or membership found lost is forgotten, so that nothing renews it.
Every call to the backend, the heart's included, is bounded by
``request_timeout`` (the client's socket timeouts). Health gauges are per
host and do not depend on it.

With ``share_walk`` the lock elects the host that plans the walk instead,
and the hosts exchange plans and reports as the capabilities of tooz
group members (:meth:`ClusterLock.publish`, :meth:`ClusterLock.documents`;
see :mod:`.sharing`).

tooz is an optional extra: ``pip install
'magnetodb-statsd-middleware[coordination]'`` plus the backend's client.
"""

import contextlib
import os
import socket
import sys
import threading
import uuid

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import runtime

# The tooz backends supported, on every tooz line.
BACKENDS = ('redis', 'memcached')


class CoordinationError(Exception):
    """The backend failed; the message is the cause, without secrets."""


def check_available(url):
    """Fail at paste load, not at the first cycle, when tooz is missing."""
    try:
        import tooz.coordination  # noqa: F401
    except ImportError:
        return ('coordination_url is set but tooz is not installed: pip '
                "install 'magnetodb-statsd-middleware[coordination]' and "
                "the backend's client library")
    if compat.urlsplit(url).scheme not in BACKENDS:
        return ('coordination_url needs a redis:// or memcached:// tooz '
                'backend URL (the backends whose locks this filter keeps '
                'alive and bounded by request_timeout)')
    return ''


def backend_name(url):
    """The backend of ``url`` as a log line may name it: its scheme, host
    and port (or socket path), without the credentials or the options
    that the URL may carry."""
    parts = compat.urlsplit(url)
    if parts.hostname is None:
        return '%s://%s' % (parts.scheme, parts.path)
    host = ('[%s]' % parts.hostname if ':' in parts.hostname
            else parts.hostname)
    if parts.port is None:
        return '%s://%s' % (parts.scheme, host)
    return '%s://%s:%d' % (parts.scheme, host, parts.port)


class ClusterLock(object):
    """The cluster-wide lock; ask :meth:`held` once per cycle.

    ``request_timeout`` bounds every call to the backend: the cycle's,
    given up after it, and the heart's, through the client's socket
    timeouts.
    """

    def __init__(self, url, name, request_timeout=30.0):
        # Imported here, in the thread that builds the lock, never in the
        # background call: importing tooz imports eventlet (through
        # futurist), and a native thread that does so first never ends
        # (its join times out, and every later call finds it running).
        from tooz import coordination
        self._tooz = coordination
        self._url = url
        self.where = backend_name(url)
        self._password = compat.urlsplit(url).password
        self._request_timeout = request_timeout
        self._name = name.encode('utf-8')
        self._member = ('%s-%d' % (socket.gethostname(),
                                   os.getpid())).encode('utf-8')
        self._coordinator = None
        self._lock = None
        self._heart = None
        self._pending = None
        self._answered = False  # whether the last call to it answered
        self._joined = set()  # the groups this coordinator joined
        self._losses = []
        self.holding = False

    def _redacted(self, exc):
        text = compat.to_text(exc)
        cause = getattr(exc, 'cause', None)  # tooz keeps the client's
        if not text and cause is not None:
            text = type(cause).__name__  # e.g. pymemcache's close error
        message = '%s: %s' % (type(exc).__name__, text)
        if self._password:
            message = message.replace(self._password, '***')
        return message

    @property
    def lock_timeout(self):
        """Seconds a lock of a dead holder lives (0 before the first
        call started the coordinator)."""
        return float(getattr(self._coordinator, 'lock_timeout', 0))

    @property
    def member(self):
        """This process's member id in the backend, as text."""
        return self._member.decode('utf-8')

    def held(self, timeout):
        """True while this process provably holds the cluster lock.

        Raises CoordinationError when the backend fails; a lock that it
        lost (a restart that emptied it) is told by :meth:`take_losses`.
        """
        try:
            return self._call(self._held, timeout)
        except CoordinationError:
            self.holding = False  # not provably
            raise

    def _call(self, function, timeout):
        """``function()`` against the backend, given up after ``timeout``.

        The call runs in the background and is given up after
        ``timeout`` seconds: a call that has not answered proves
        nothing, and none is started while it is still running.
        """
        no_answer = CoordinationError('no answer within %gs' % timeout)
        if self._pending is not None and self._pending.is_alive():
            raise no_answer  # the same outage as when that call started
        outcome = {}

        def call():
            try:
                outcome['value'] = self._backend_call(function)
            except CoordinationError as exc:
                outcome['error'] = exc

        self._pending = runtime.spawn(call, 'magnetodb-statsd-coordination')
        runtime.join(self._pending, timeout)
        self._answered = 'value' in outcome
        if not self._answered:
            raise outcome.get('error', no_answer)
        return outcome['value']

    def _backend_call(self, function):
        try:
            return function()
        except CoordinationError:
            raise
        except Exception as exc:  # tooz and client errors vary by backend
            raise CoordinationError(self._redacted(exc))

    def _started(self):
        """The coordinator, started once and kept through outages: its
        client reconnects by itself once the backend answers again."""
        if self._coordinator is None:
            coordinator = self._tooz.get_coordinator(self._url, self._member)
            # The client's socket timeouts (tooz reads them from this
            # attribute, and only there), before it connects.
            coordinator.timeout = min(float(coordinator.timeout),
                                      self._request_timeout)
            try:
                self._lock = _started_lock(coordinator, self._name,
                                           self._member)
            except Exception:
                _abandon(coordinator)
                raise
            self._coordinator = coordinator
            self._heart = Heart(coordinator, self._lock)
            self._joined = set()
        return self._coordinator

    def _held(self):
        self._started()
        lock = self._lock
        if lock.owned and lock.renewed():
            self.holding = True
            return True
        if self.holding:  # renewed() or the heart found it gone
            self._lost('the cluster lock this process held is gone from '
                       'the backend (restarted empty, or this process '
                       'stalled past the lock timeout)')
        self.holding = bool(lock.acquire())
        return self.holding

    def _lost(self, what):
        self._losses.append(what)

    def take_losses(self):
        """What the backend lost of this process's (its lock, its group
        memberships) since the last call, each taken again where it
        could be: an outage to say even when every call answered."""
        losses, self._losses = self._losses, []
        return losses

    # Groups: the members of a shared walk, and what they publish.

    def publish(self, group, document, timeout):
        """Join ``group`` (created if need be) with ``document`` (bytes)
        as this member's capabilities, or replace them.

        A membership the backend lost (restarted empty) is joined again,
        and told by :meth:`take_losses`.
        """
        def call():
            coordinator = self._started()
            name = group.encode('utf-8')
            if name in self._joined:
                try:
                    return coordinator.update_capabilities(
                        name, document).get()
                except (self._tooz.MemberNotJoined,
                        self._tooz.GroupNotCreated):
                    self._joined.discard(name)
                    self._lost(
                        'this host\'s membership of the group %s is gone '
                        'from the backend (restarted empty, or this process '
                        'stalled past the membership timeout)' % group)
            self._join(coordinator, name, document)
        return self._call(call, timeout)

    def _join(self, coordinator, name, document):
        tooz = self._tooz
        try:
            coordinator.create_group(name).get()
        except tooz.GroupAlreadyExist:
            pass
        try:
            coordinator.join_group(name, document).get()
        except tooz.MemberAlreadyExist:
            coordinator.update_capabilities(name, document).get()
        self._joined.add(name)

    def leave(self, group, timeout):
        """Leave ``group`` if this process joined it."""
        def call():
            name = group.encode('utf-8')
            if self._coordinator is None or name not in self._joined:
                return
            self._joined.discard(name)
            try:
                self._coordinator.leave_group(name).get()
            except (self._tooz.MemberNotJoined, self._tooz.GroupNotCreated):
                pass  # not joined any more is fine
        return self._call(call, timeout)

    def documents(self, group, timeout):
        """``{member: capabilities}`` of the live members of ``group``."""
        def call():
            coordinator = self._started()
            name = group.encode('utf-8')
            try:
                members = coordinator.get_members(name).get()
            except self._tooz.GroupNotCreated:
                return {}
            found = {}
            for member in members:
                try:
                    document = coordinator.get_member_capabilities(
                        name, member).get()
                except self._tooz.MemberNotJoined:
                    continue  # left meanwhile
                found[compat.to_text(member)] = document
            return found
        return self._call(call, timeout)

    def release(self, timeout):
        """Hand the lock over and leave the groups at once (clean stop),
        waiting at most ``timeout`` seconds for a backend that may be gone
        (the lock and the membership then expire by themselves).

        At the process's exit, tooz 1.x and later may no longer run what
        they hand to their executor (leaving a group is): the lock, which
        is released directly, comes first. A coordinator whose backend
        did not answer last is abandoned, not stopped: stopping it would
        only fail again, and tooz logs each failure with a traceback.
        """
        def call():
            coordinator, self._coordinator = self._coordinator, None
            if coordinator is None:
                return
            # No more beats: the membership expires within the timeout
            # even if the groups cannot be left.
            self._heart.stop()
            self.holding = False
            if not self._answered:
                _abandon(coordinator)
                return
            try:
                if self._lock.owned:
                    self._lock.release()
                for name in list(self._joined):
                    try:
                        coordinator.leave_group(name).get()
                    except Exception:  # gone, or not joined any more
                        pass
                _stopped(coordinator)
            except Exception:  # the backend went away meanwhile
                _abandon(coordinator)
        runtime.join(runtime.spawn(call, 'magnetodb-statsd-release'),
                     timeout)


def _stopped(coordinator):
    """Stop ``coordinator``, with no group left for tooz to leave (this
    process left those it could; tooz's Kilo memcached driver keeps no
    such set)."""
    getattr(coordinator, '_joined_groups', set()).clear()
    coordinator.stop()


def _abandon(coordinator):
    """Let ``coordinator`` go without a word to its backend: its executor
    ends, its connections close, tooz logs nothing."""
    executor = getattr(coordinator, '_executor', None)
    if executor is not None:
        try:
            executor.shutdown(wait=False)
        except Exception:  # already shut down
            pass
    client = getattr(coordinator, '_client', None) or getattr(
        coordinator, 'client', None)
    for close in ('close', 'disconnect_all'):
        if hasattr(client, close):
            try:
                getattr(client, close)()
            except Exception:  # a broken client may fail to close
                pass
            break


def _started_lock(coordinator, name, member):
    """Start ``coordinator`` (without tooz's heart: ours beats, see
    :class:`Heart`) and return the cluster lock ``name``.

    tooz's own lock renewals are kept out: its redis heartbeat renews the
    locks it thinks are held and logs a traceback every beat for one
    that was lost, and its memcached lock renews a key whoever holds it.
    On CPython 2.7 the tooz that fits MagnetoDB 2015.1's pins is the Kilo
    line (0.13-0.15, no ``requires_beating``, no heart).
    """
    if hasattr(coordinator, 'requires_beating'):
        coordinator.start(start_heart=False)
    else:
        coordinator.start()
    _no_client_retries(coordinator)
    if _is_memcached(coordinator):
        return MemcachedLock(coordinator, coordinator.get_lock(name).name,
                             member)
    return RedisLock(coordinator.get_lock(name))


def _no_client_retries(coordinator):
    """redis-py 6 and later retry a timed-out command three times, with
    backoff: one call would block for four socket timeouts and more."""
    client = getattr(coordinator, '_client', None)
    if hasattr(client, 'set_retry'):
        from redis import backoff
        from redis import retry
        client.set_retry(retry.Retry(backoff.NoBackoff(), 0))


def _is_memcached(coordinator):
    driver = sys.modules.get('tooz.drivers.memcached')
    return driver is not None and isinstance(coordinator,
                                             driver.MemcachedDriver)


class Heart(object):
    """Keeps this process's membership and lock alive, in a thread of
    ours (a Ctrl-C landing in it under eventlet still reaches the server).

    tooz 1.x and later beat in a heart thread of their own, which retries
    a failed beat every second with a WARNING, and logs a traceback for
    each lock it cannot renew; the Kilo line leaves the beating to its
    user. Here: the membership (``coordinator.heartbeat()``), then the
    lock while this process has it, three times within the shorter of the
    lock and membership timeouts less one second (memcached counts whole
    seconds: a key set to live N seconds may live N-1). A beat that
    fails is left to the next one and to the cycle, which says it.
    """

    def __init__(self, coordinator, lock):
        self._coordinator = coordinator
        self._lock = lock
        self._stopped = threading.Event()
        timeouts = [float(getattr(coordinator, attribute))
                    for attribute in ('lock_timeout', 'membership_timeout')
                    if hasattr(coordinator, attribute)]
        self._pause = max((min(timeouts) - 1) / 3.0, 0.1)
        runtime.spawn(self._beat, 'magnetodb-statsd-heart')

    def _beat(self):
        while not self._stopped.wait(self._pause):
            try:
                self._coordinator.heartbeat()
                if self._lock.owned:
                    self._lock.renewed()  # forgets a lock found lost
            except Exception:  # the next cycle's check logs it
                pass

    def stop(self):
        self._stopped.set()


class RedisLock(object):
    """The cluster lock in redis: tooz's key, taken and kept by us.

    Hosts on either tooz line share tooz's lock key, but the lock is
    taken, renewed and released here, each in one atomic step, and only
    while the key holds our token:

    - taken with ``SET NX PX``: the redis-py 2.10 lock under tooz's Kilo
      line takes it with ``SETNX`` then ``PEXPIRE``, and a client that
      times out between the two (a frozen redis answers them later)
      leaves a key that never expires: nobody would send table metrics
      again. A key found without an expiry is given the lock timeout.
    - renewed by resetting the expiry to the lock timeout: tooz's Kilo
      heartbeat *adds* the timeout to what is left, so a dead holder's
      lock outlived it, and tooz's later heartbeats log a traceback at
      every beat for a lock that was lost.
    - one renewal at a time (WATCH/MULTI): two at once would each see
      the other's as a change of owner.
    """

    def __init__(self, tooz_lock):
        redis_lock = getattr(tooz_lock, '_lock', None)  # redis-py's
        if redis_lock is None:
            raise CoordinationError(
                'this tooz release is supported with the redis:// and '
                'memcached:// backends only')
        self._redis = redis_lock.redis
        self._key = redis_lock.name
        self._timeout_ms = int(redis_lock.timeout * 1000)
        self._token = None
        # The token of this process's attempts, the same until the lock
        # is ours: an attempt given up may still have taken the key.
        self._candidate = uuid.uuid4().hex.encode('ascii')
        self._one_at_a_time = threading.Lock()

    @property
    def owned(self):
        """Whether this process took the lock and has not lost it yet."""
        return self._token is not None

    def acquire(self):
        """Take the lock if it is free, or if an attempt of ours that was
        given up (a frozen redis answers it later) took it; never waits:
        the cycle asks again."""
        token = self._candidate
        with self._one_at_a_time, self._translated():
            if self._redis.set(self._key, token, nx=True,
                               px=self._timeout_ms):
                self._token = token
                return True
            if self._redis.get(self._key) == token:
                self._token = token
                self._redis.pexpire(self._key, self._timeout_ms)
                return True
            if self._redis.pttl(self._key) == -1:  # no expiry: repair
                self._redis.pexpire(self._key, self._timeout_ms)
        return False

    def renewed(self):
        """Whether the key still holds our token, resetting its expiry;
        a key found not ours is forgotten: nothing renews it again."""
        return self._if_ours(lambda pipe: pipe.pexpire(self._key,
                                                       self._timeout_ms))

    def release(self):
        return self._if_ours(lambda pipe: pipe.delete(self._key),
                             forget=True)

    def _if_ours(self, change, forget=False):
        """``change(pipe)`` applied only while the key holds our token,
        one call at a time (the heart's and the cycle's)."""
        from redis import exceptions
        with self._one_at_a_time, self._translated():
            token = self._token
            if token is None:
                return False
            with self._redis.pipeline() as pipe:
                try:
                    pipe.watch(self._key)
                    ours = pipe.get(self._key) == token
                    if ours:
                        pipe.multi()
                        change(pipe)
                        pipe.execute()
                except exceptions.WatchError:  # the key changed meanwhile
                    ours = False
            if forget or not ours:
                self._token = None
                self._candidate = uuid.uuid4().hex.encode('ascii')
            return ours

    @contextlib.contextmanager
    def _translated(self):
        """The client's errors as tooz's own calls raise them, so that an
        outage reads the same whichever call met it first."""
        from redis import exceptions
        from tooz import coordination
        try:
            yield
        except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
            raise coordination.ToozConnectionError(compat.to_text(exc))
        except exceptions.RedisError as exc:
            raise coordination.ToozError(compat.to_text(exc))


class MemcachedLock(object):
    """tooz's memcached lock, renewed and released only while it is ours.

    tooz renews its memcached lock with ``touch``, which does not ask
    whose the key is: a holder that lost the lock (stalled past the
    timeout, or the key evicted) goes on renewing its successor's lock,
    and once that successor dies the lock never expires and nobody sends
    table metrics again. Its Kilo line (0.13-0.15) also has no
    ``is_still_owner``, and its release deletes the key whoever holds it.
    Here the key is tooz's own (hosts on either line share one lock),
    taken with ``add``, and renewed or released with ``gets``/``cas`` only
    while it holds our member id, one command pair at a time. memcached
    counts whole seconds: the timeout must be 2 or more.
    """

    def __init__(self, coordinator, key, member):
        from pymemcache.client import base
        if min(coordinator.lock_timeout, coordinator.membership_timeout) < 2:
            raise CoordinationError(
                'memcached counts whole seconds: its lock and membership '
                'timeouts must be 2 or more')
        if type(coordinator.client) is base.Client:
            # tooz 0.13 shares one plain client, one socket, between its
            # executor, our heart and our cycles: one command at a time.
            coordinator.client = _SerializedClient(coordinator.client)
        self._coordinator = coordinator
        self._key = key
        self._member = member
        self._timeout = coordinator.lock_timeout
        self._client_timeout = float(coordinator.timeout)
        self._translated = _memcached_failures()
        # Our cycle's calls and our heart's: one gets/cas at a time, or
        # each would see the other's cas as a change of owner.
        self._one_at_a_time = threading.Lock()
        self.owned = False

    def acquire(self):
        """Take the lock if it is free, or if it holds our member id (an
        attempt of ours that was given up may have taken it); never
        waits: the cycle asks again."""
        with self._one_at_a_time:
            self.owned = bool(self._call('add', self._key, self._member,
                                         expire=self._timeout,
                                         noreply=False)) or self._ours()
        return self.owned

    def renewed(self):
        """Whether the key still holds our member id, resetting its
        expiry to the lock timeout; a key found not ours is forgotten:
        nothing renews it again."""
        with self._one_at_a_time:
            self.owned = self.owned and self._ours()
            return self.owned

    def _ours(self):
        value, cas = self._call('gets', self._key)
        return value == self._member and bool(self._call(
            'cas', self._key, self._member, cas, expire=self._timeout,
            noreply=False))

    def release(self):
        with self._one_at_a_time:
            self.owned = False
            value, cas = self._call('gets', self._key)
            if value != self._member:
                return False
            # A negative expiry expires the key at once: a delete that
            # happens only if the key is still ours.
            return bool(self._call('cas', self._key, self._member, cas,
                                   expire=-1, noreply=False))

    def _call(self, command, *args, **kwargs):
        """One client command, failing as tooz's own calls fail (an outage
        reads the same whichever call met it first). A connection that
        memcached closed fails at once, then the client opens a new one:
        so a command that failed at once is tried once more (one that
        timed out is not: that would double the wait)."""
        from tooz import coordination
        call = self._translated(getattr(self._coordinator.client, command))
        started = compat.monotonic()
        try:
            return call(*args, **kwargs)
        except coordination.ToozConnectionError:
            if compat.monotonic() - started >= self._client_timeout / 2.0:
                raise
            return call(*args, **kwargs)


def _memcached_failures():
    """The decorator with which tooz's memcached driver turns client
    errors into its own (0.15 and later). tooz 0.13 turns those of
    ``start`` only, all into ToozConnectionError: so do we."""
    from tooz import coordination
    from tooz.drivers import memcached
    translated = getattr(memcached, '_translate_failures', None)
    if translated is not None:
        return translated

    def translated(call):
        def translating(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            except coordination.ToozError:
                raise
            except Exception as exc:
                raise coordination.ToozConnectionError(compat.to_text(exc))
        return translating
    return translated


class _SerializedClient(object):
    """A pymemcache client whose commands run one at a time."""

    def __init__(self, client):
        self._client = client
        self._lock = threading.RLock()

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def serialized(*args, **kwargs):
            with self._lock:
                return attribute(*args, **kwargs)
        return serialized
