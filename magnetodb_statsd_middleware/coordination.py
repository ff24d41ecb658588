"""One emitter of table metrics per cluster, elected through a tooz lock.

Every host's collector reads the same cluster-wide listing, and every
listing makes MagnetoDB read statistics of every table from Cassandra: N
hosts would multiply that load by N. With ``coordination_url`` set, only
the process holding the cluster lock reads and sends table metrics; a
heartbeat keeps the lock alive, and a holder that dies loses it when the
backend's lock timeout expires (``?timeout=N`` in a redis or memcached
URL).

When the backend cannot be reached, or the lock cannot be shown to be
still ours, this process stands down: table metrics are sent only while
the lock is provably held, never by two hosts at once. It tries again
every interval. Health gauges are per host and do not depend on it.

With ``share_walk`` the lock elects the host that plans the walk instead,
and the hosts exchange plans and reports as the capabilities of tooz
group members (:meth:`ClusterLock.publish`, :meth:`ClusterLock.documents`;
see :mod:`.sharing`).

tooz is an optional extra: ``pip install
'magnetodb-statsd-middleware[coordination]'`` plus the backend's client.
"""

import functools
import os
import socket
import sys
import threading
import time

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import runtime


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
    if not compat.urlsplit(url).scheme:
        return 'coordination_url needs a tooz backend scheme, e.g. redis://'
    return ''


class ClusterLock(object):
    """The cluster-wide lock; ask :meth:`held` once per cycle."""

    def __init__(self, url, name):
        # Imported here, in the thread that builds the lock, never in the
        # background call: importing tooz imports eventlet (through
        # futurist), and a native thread that does so first never ends
        # (its join times out, and every later call finds it running).
        from tooz import coordination
        self._tooz = coordination
        self._url = url
        self._password = compat.urlsplit(url).password
        self._name = name.encode('utf-8')
        self._member = ('%s-%d' % (socket.gethostname(),
                                   os.getpid())).encode('utf-8')
        self._coordinator = None
        self._lock = None
        self._pending = None
        self._joined = set()  # the groups this coordinator joined
        self.holding = False

    def _redacted(self, exc):
        message = '%s: %s' % (type(exc).__name__, compat.to_text(exc))
        if self._password:
            message = message.replace(self._password, '***')
        return message

    @property
    def member(self):
        """This process's member id in the backend, as text."""
        return self._member.decode('utf-8')

    def held(self, timeout):
        """True while this process provably holds the cluster lock."""
        return self._call(self._held, timeout)

    def _call(self, function, timeout):
        """``function()`` against the backend, given up after ``timeout``.

        The backend's client may retry for minutes when the backend is
        gone (redis-py does), so the call runs in the background and is
        given up after ``timeout`` seconds: a call that has not answered
        proves nothing, and none is started while it is still running.
        """
        no_answer = CoordinationError('no answer within %gs' % timeout)
        if self._pending is not None and self._pending.is_alive():
            raise no_answer  # the same outage as when that call started
        outcome = {}

        def call():
            try:
                outcome['value'] = function()
            except CoordinationError as exc:
                outcome['error'] = exc

        self._pending = runtime.spawn(call, 'magnetodb-statsd-coordination')
        runtime.join(self._pending, timeout)
        if 'error' in outcome:
            raise outcome['error']
        if 'value' not in outcome:
            raise no_answer
        return outcome['value']

    def _started(self):
        if self._coordinator is None:
            coordinator = self._tooz.get_coordinator(self._url, self._member)
            self._coordinator = coordinator
            self._lock = _started_lock(coordinator, self._name,
                                       self._member)
            self._joined = set()
        return self._coordinator

    def _held(self):
        try:
            self._started()
            if self.holding and self._lock.is_still_owner():
                return True
            self.holding = bool(self._lock.acquire(blocking=False))
            return self.holding
        except Exception as exc:  # tooz and client errors vary by backend
            self._drop()
            raise CoordinationError(self._redacted(exc))

    # Groups: the members of a shared walk, and what they publish.

    def publish(self, group, document, timeout):
        """Join ``group`` (created if need be) with ``document`` (bytes)
        as this member's capabilities, or replace them."""
        def call():
            coordinator = self._backend_call(self._started)
            name = group.encode('utf-8')
            if name in self._joined:
                try:
                    return self._backend_call(
                        coordinator.update_capabilities(name, document).get)
                except CoordinationError:
                    self._joined.discard(name)  # expired meanwhile: rejoin
            self._join(coordinator, name, document)
        return self._call(call, timeout)

    def _join(self, coordinator, name, document):
        tooz = self._tooz
        try:
            coordinator.create_group(name).get()
        except tooz.GroupAlreadyExist:
            pass
        except Exception as exc:
            raise CoordinationError(self._redacted(exc))
        try:
            coordinator.join_group(name, document).get()
        except tooz.MemberAlreadyExist:
            self._backend_call(
                coordinator.update_capabilities(name, document).get)
        except Exception as exc:
            raise CoordinationError(self._redacted(exc))
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
            except Exception as exc:  # not joined any more is fine
                if not isinstance(exc, (self._tooz.MemberNotJoined,
                                        self._tooz.GroupNotCreated)):
                    raise CoordinationError(self._redacted(exc))
        return self._call(call, timeout)

    def documents(self, group, timeout):
        """``{member: capabilities}`` of the live members of ``group``."""
        def call():
            coordinator = self._backend_call(self._started)
            name = group.encode('utf-8')
            try:
                members = coordinator.get_members(name).get()
            except self._tooz.GroupNotCreated:
                return {}
            except Exception as exc:
                raise CoordinationError(self._redacted(exc))
            found = {}
            for member in members:
                try:
                    document = coordinator.get_member_capabilities(
                        name, member).get()
                except self._tooz.MemberNotJoined:
                    continue  # left meanwhile
                except Exception as exc:
                    raise CoordinationError(self._redacted(exc))
                found[compat.to_text(member)] = document
            return found
        return self._call(call, timeout)

    def _backend_call(self, function):
        try:
            return function()
        except CoordinationError:
            raise
        except Exception as exc:  # tooz and client errors vary by backend
            raise CoordinationError(self._redacted(exc))

    def release(self, timeout):
        """Hand the lock over and leave the groups at once (clean stop),
        waiting at most ``timeout`` seconds for a backend that may be gone
        (the lock and the membership then expire by themselves).

        At the process's exit, tooz 1.x and later may no longer run what
        they hand to their executor (leaving a group is): the lock, which
        they release directly, comes first.
        """
        def call():
            # No more beats: the membership expires within the timeout
            # even if the groups cannot be left.
            if isinstance(self._lock, (KiloRedisLock, MemcachedLock)):
                self._lock.drop()
            heart = getattr(self._coordinator, 'heart', None)
            if heart is not None:
                heart.stop()
            try:
                if self.holding:
                    self._lock.release()
            except Exception:  # the backend may be gone
                pass
            for name in list(self._joined):
                try:
                    self._coordinator.leave_group(name).get()
                except Exception:  # gone, or not joined any more
                    pass
            self._drop()
        runtime.join(runtime.spawn(call, 'magnetodb-statsd-release'),
                     timeout)

    def _drop(self):
        coordinator, self._coordinator = self._coordinator, None
        lock, self._lock = self._lock, None
        if isinstance(lock, (KiloRedisLock, MemcachedLock)):
            lock.drop()
        self.holding = False
        self._joined = set()
        if coordinator is not None:
            try:
                coordinator.stop()
            except Exception:  # stopping a broken coordinator may fail
                pass


def _started_lock(coordinator, name, member):
    """Start ``coordinator`` and return its lock ``name``, kept alive.

    tooz 1.x and later beat in a heart thread of their own. On CPython 2.7
    the tooz that fits MagnetoDB 2015.1's pins is the Kilo line (0.13-0.15,
    no ``requires_beating``), whose redis lock needs :class:`KiloRedisLock`.
    memcached's lock needs :class:`MemcachedLock` on every line.
    """
    kilo = not hasattr(coordinator, 'requires_beating')
    if kilo:
        coordinator.start()
    else:
        coordinator.start(start_heart=False)
    if _is_memcached(coordinator):
        return MemcachedLock(coordinator, coordinator.get_lock(name).name,
                             member)
    if kilo:
        lock = KiloRedisLock(coordinator.get_lock(name))
        KiloHeart(coordinator, lock).start()
        return lock
    if coordinator.requires_beating:
        # Our kind of thread: a Ctrl-C landing in it still reaches the
        # server.
        coordinator.heart.start(thread_cls=functools.partial(
            runtime.new_thread, name='magnetodb-statsd-heart'))
    return coordinator.get_lock(name)


def _is_memcached(coordinator):
    driver = sys.modules.get('tooz.drivers.memcached')
    return driver is not None and isinstance(coordinator,
                                             driver.MemcachedDriver)


class KiloHeart(object):
    """The membership heartbeat that tooz's Kilo line leaves to its user.

    tooz 1.x and later beat in a thread of their own; the Kilo line has
    the caller call ``heartbeat()``, or the groups this process joined
    forget it after their membership timeout. Beats a third of that
    timeout apart until the lock it serves is dropped.
    """

    def __init__(self, coordinator, lock):
        self._coordinator = coordinator
        self._lock = lock
        self._pause = max(float(getattr(coordinator, 'membership_timeout',
                                        30)) / 3.0, 0.1)

    def start(self):
        def beat():
            while not self._lock.dropped.is_set():
                try:
                    self._coordinator.heartbeat()
                except Exception:  # the next cycle's check logs it
                    pass
                self._lock.dropped.wait(self._pause)
        runtime.spawn(beat, 'magnetodb-statsd-membership')


class KiloRedisLock(object):
    """The redis lock of tooz's Kilo line, made to keep its timeout.

    That tooz wraps a redis-py ``Lock`` whose token lives in a
    thread-local (our calls run in a new thread each cycle, so a lock
    taken in one could be neither checked nor released in the next), and
    its heartbeat *adds* the lock timeout to the remaining expiry each
    beat (``Lock.extend``), so a dead holder's lock would outlive it by
    as long as it had held it. Here the token is kept by us, and the
    heart resets the expiry to the lock timeout, only while the key still
    holds our token (WATCH/MULTI): a dead holder's lock expires within
    the timeout.
    """

    def __init__(self, tooz_lock):
        self._tooz_lock = tooz_lock
        self._redis_lock = getattr(tooz_lock, '_lock', None)  # redis-py's
        if not hasattr(self._redis_lock, 'local'):
            raise CoordinationError(
                'this tooz release (before 1.0) is supported with the '
                'redis:// and memcached:// backends only')
        self._token = None
        self._heart = None
        self._beating = threading.Event()
        self.dropped = threading.Event()

    def acquire(self, blocking=False):
        if not self._tooz_lock.acquire(blocking=blocking):
            return False
        # Out of the coordinator's heartbeat, which would extend it.
        self._tooz_lock._coord._acquired_locks.discard(self._tooz_lock)
        self._token = self._redis_lock.local.token
        self._start_beating()
        return True

    def is_still_owner(self):
        """Whether the key still holds our token; resets its expiry.

        Errors are tooz's, as the lock's own calls raise them, so that an
        outage reads the same whichever call met it first.
        """
        from redis import exceptions
        from tooz import coordination
        redis_lock = self._redis_lock
        try:
            with redis_lock.redis.pipeline() as pipe:
                pipe.watch(redis_lock.name)
                if self._token is None or pipe.get(
                        redis_lock.name) != self._token:
                    return False
                pipe.multi()
                pipe.pexpire(redis_lock.name,
                             int(redis_lock.timeout * 1000))
                pipe.execute()
        except exceptions.WatchError:  # the key changed meanwhile
            return False
        except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
            raise coordination.ToozConnectionError(compat.to_text(exc))
        except exceptions.RedisError as exc:
            raise coordination.ToozError(compat.to_text(exc))
        return True

    def release(self):
        self.stop_beating()
        self._redis_lock.local.token = self._token
        self._token = None
        return self._tooz_lock.release()

    def stop_beating(self):
        self._beating.clear()

    def drop(self):
        """The coordinator is being stopped: every beat ends."""
        self.stop_beating()
        self.dropped.set()

    def _start_beating(self):
        self._beating.set()
        if self._heart is not None and self._heart.is_alive():
            return

        def beat():
            # A third of the timeout: two beats may be lost or late.
            pause = max(self._redis_lock.timeout / 3.0, 0.1)
            while self._beating.is_set():
                try:
                    if not self.is_still_owner():
                        break
                except Exception:  # the next cycle's check logs it
                    pass
                time.sleep(pause)

        self._heart = runtime.spawn(beat, 'magnetodb-statsd-heart')


class MemcachedLock(object):
    """tooz's memcached lock, renewed and released only while it is ours.

    tooz renews its memcached lock with ``touch``, which does not ask
    whose the key is: a holder that lost the lock (stalled past the
    timeout, or the key evicted) goes on renewing its successor's lock
    from its heartbeat, and once that successor dies the lock never
    expires and nobody sends table metrics again. Its Kilo line
    (0.13-0.15) also has no ``is_still_owner`` and no heart thread, and
    its release deletes the key whoever holds it. Here the key is tooz's
    own (hosts on either line share one lock), taken with ``add``, and
    renewed or released with ``gets``/``cas`` only while it holds our
    member id. A heart of ours beats three times within the shorter of the
    lock and membership timeouts, less one second: the group membership
    (``coordinator.heartbeat()``) always, the lock while held, each back
    to its full timeout, never beyond. memcached counts whole seconds: a
    key set to live N seconds lives N-1 to N, so the timeout must be 2 or
    more.
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
        self._translated = _memcached_failures()
        # Our cycle's calls and our heart's: one gets/cas at a time, or
        # each would see the other's cas as a change of owner.
        self._one_at_a_time = threading.Lock()
        self._holding = threading.Event()
        self._stopped = threading.Event()
        self._heart = runtime.spawn(self._beat, 'magnetodb-statsd-heart')

    def acquire(self, blocking=False):
        """Take the lock if it is free or already ours; never waits
        (``blocking`` is tooz's signature): the cycle asks again."""
        with self._one_at_a_time:
            held = (self._call('add', self._key, self._member,
                               expire=self._timeout, noreply=False)
                    or self._renewed())
        if held:
            self._holding.set()
        return held

    def is_still_owner(self):
        """Whether the key still holds our member id; resets its expiry
        to the lock timeout."""
        with self._one_at_a_time:
            held = self._renewed()
        if not held:
            self._holding.clear()
        return held

    def release(self):
        self._holding.clear()
        with self._one_at_a_time:
            value, cas = self._call('gets', self._key)
            if value != self._member:
                return False
            # A negative expiry expires the key at once: a delete that
            # happens only if the key is still ours.
            return bool(self._call('cas', self._key, self._member, cas,
                                   expire=-1, noreply=False))

    def drop(self):
        """The coordinator is being stopped: every beat ends."""
        self._holding.clear()
        self._stopped.set()

    def _renewed(self):
        value, cas = self._call('gets', self._key)
        return value == self._member and bool(self._call(
            'cas', self._key, self._member, cas, expire=self._timeout,
            noreply=False))

    def _call(self, command, *args, **kwargs):
        """One client command, failing as tooz's own calls fail (an outage
        reads the same whichever call met it first). A connection that
        memcached closed fails once, then the client opens a new one: so
        a failed command is tried once more."""
        from tooz import coordination
        call = self._translated(getattr(self._coordinator.client, command))
        try:
            return call(*args, **kwargs)
        except coordination.ToozConnectionError:
            return call(*args, **kwargs)

    def _beat(self):
        # memcached counts whole seconds: a key set now may live one
        # second less than its timeout. Three beats fit in what is left.
        pause = max((min(self._timeout,
                         self._coordinator.membership_timeout) - 1) / 3.0,
                    0.1)
        while not self._stopped.wait(pause):
            try:
                self._coordinator.heartbeat()
                if self._holding.is_set():
                    self.is_still_owner()
            except Exception:  # the next cycle's check logs it
                pass


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
