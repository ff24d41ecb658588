"""What differs between the two runtimes we live in, and nothing else.

The filter is imported by the API server's own interpreter: CPython 2.7
with a MagnetoDB 2015.1 deployment's Kilo-era libraries, or CPython 3.10+
with current ones. Every difference between them that the package meets is
settled here, so that the other modules read as ordinary Python 3 and
never test a version themselves.

Text in, text out: names are text (``unicode`` on 2.7) inside the package;
bytes are decoded where they arrive and encoded where they leave.
"""

import os
import sys
import time

PY2 = sys.version_info[0] == 2

if PY2:  # pragma: no cover (each runtime covers its own branch)
    import urllib as _urllib

    import httplib as http_client  # noqa: F401
    import urlparse as _urlparse

    text_type = unicode  # noqa: F821
    string_types = (str, unicode)  # noqa: F821
    integer_types = (int, long)  # noqa: F821
    _quote = _urllib.quote
    urlsplit = _urlparse.urlsplit
    urlunsplit = _urlparse.urlunsplit
    parse_qsl = _urlparse.parse_qsl
else:
    import http.client as http_client  # noqa: F401
    import urllib.parse as _urlparse

    text_type = str
    string_types = (str,)
    integer_types = (int,)
    _quote = _urlparse.quote
    urlsplit = _urlparse.urlsplit
    urlunsplit = _urlparse.urlunsplit
    parse_qsl = _urlparse.parse_qsl

# Socket, file and lock errors: IOError and OSError are one class on 3.x,
# two on 2.7 (where socket.error and fcntl's errors are IOErrors).
OS_ERRORS = (IOError, OSError)


def utf8(text):
    """UTF-8 bytes of a text, lone surrogates (from JSON) included."""
    if isinstance(text, bytes):
        return text
    if PY2:
        return text.encode('utf-8')
    return text.encode('utf-8', 'surrogatepass')


def to_text(value):
    """Any value as text, never raising: bytes are read as UTF-8."""
    if isinstance(value, text_type):
        return value
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    try:
        return text_type(value)
    except UnicodeError:  # an exception whose message is non-ASCII bytes
        return str(value).decode('utf-8', 'replace')


def write_line(stream, text):
    """Write one line of text to ``stream`` and flush it, never raising
    for a character (2.7 streams take bytes in their own encoding)."""
    line = to_text(text) + u'\n'
    if PY2:  # pragma: no cover
        line = line.encode(getattr(stream, 'encoding', None) or 'utf-8',
                           'replace')
    stream.write(line)
    stream.flush()


def quote(text):
    """Percent-encode a text for a URL path or query (UTF-8, ``,`` kept)."""
    return _quote(utf8(text), safe=',')


def urlencode(params):
    """A query string; values are text or numbers, keys keep their order."""
    items = params.items() if hasattr(params, 'items') else params
    return '&'.join('%s=%s' % (quote(to_text(key)), quote(to_text(value)))
                    for key, value in items)


if hasattr(time, 'monotonic'):
    monotonic = time.monotonic
else:  # pragma: no cover
    import ctypes
    import ctypes.util

    class _Timespec(ctypes.Structure):
        _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]

    _CLOCK_MONOTONIC = 1  # Linux
    _librt = ctypes.CDLL(ctypes.util.find_library('rt') or 'librt.so.1',
                         use_errno=True)
    _clock_gettime = _librt.clock_gettime
    _clock_gettime.argtypes = [ctypes.c_int, ctypes.POINTER(_Timespec)]

    def monotonic():
        """Seconds of CLOCK_MONOTONIC: immune to wall-clock steps."""
        spec = _Timespec()
        if _clock_gettime(_CLOCK_MONOTONIC, ctypes.byref(spec)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return spec.tv_sec + spec.tv_nsec * 1e-9


if os.open in getattr(os, 'supports_dir_fd', ()):
    def _open(path, flags, mode, dir_fd):
        return os.open(path, flags, mode, dir_fd=dir_fd)
else:  # pragma: no cover (2.7)
    import ctypes

    # 2.7's os.open has no dir_fd. libc's openat(2) through ctypes is the
    # very call that 3.x makes for dir_fd, so both runtimes resolve the
    # name inside the directory already opened and checked. The other way,
    # "/proc/self/fd/N/name", would need procfs mounted (not so in every
    # chroot) for the same result.
    _libc = ctypes.CDLL(None, use_errno=True)
    _openat = _libc.openat
    _openat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                        ctypes.c_uint]
    _openat.restype = ctypes.c_int

    def _open(path, flags, mode, dir_fd):
        if dir_fd is None:
            return os.open(path, flags, mode)
        if isinstance(path, text_type):
            path = path.encode(sys.getfilesystemencoding())
        fd = _openat(dir_fd, path, flags, mode)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
        return fd


def open_private(path, flags, mode, dir_fd=None):
    """``os.open`` with close-on-exec set, so no child process keeps it.

    With ``dir_fd``, ``path`` is a name inside that open directory.
    """
    cloexec = getattr(os, 'O_CLOEXEC', 0)
    fd = _open(path, flags | cloexec, mode, dir_fd)
    if not cloexec:  # pragma: no cover (2.7)
        import fcntl
        fcntl.fcntl(fd, fcntl.F_SETFD,
                    fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
    return fd


def pwrite(fd, data, offset):
    """Write ``data`` at ``offset`` (2.7 has no ``os.pwrite``)."""
    if hasattr(os, 'pwrite'):
        return os.pwrite(fd, data, offset)
    os.lseek(fd, offset, os.SEEK_SET)  # pragma: no cover
    return os.write(fd, data)  # pragma: no cover


def at_fork_in_child(callback):
    """Have ``callback()`` run in every child forked from now on; False
    where the runtime cannot (2.7 has no ``os.register_at_fork``)."""
    if not hasattr(os, 'register_at_fork'):
        return False  # pragma: no cover (2.7)
    os.register_at_fork(after_in_child=callback)
    return True


def config_parse_kwargs(conf):
    """Keyword arguments of ``ConfigOpts()`` that this oslo.config knows.

    oslo.config 1.9.3 (Kilo) reads no environment variables; current
    releases do unless told not to, and a private ConfigOpts of ours must
    see only the files the operator named.
    """
    import inspect
    try:
        names = inspect.signature(conf.__call__).parameters
    except AttributeError:  # pragma: no cover (2.7)
        names = inspect.getargspec(conf.__call__).args
    return {'use_env': False} if 'use_env' in names else {}


# Keystone's client library: keystoneauth1 on CPython 3; on 2.7 the one a
# MagnetoDB 2015.1 deployment has (python-keystoneclient 1.3, whose
# session and identity plugins keystoneauth1 was later split from, with
# the same calls). Plugins by keystoneauth's names.
if PY2:  # pragma: no cover
    KEYSTONE_LIBRARY = 'python-keystoneclient'

    def _keystone():
        from keystoneclient import exceptions
        from keystoneclient import session
        from keystoneclient.auth.identity import generic
        from keystoneclient.auth.identity import v3
        return exceptions, session, {'password': generic.Password,
                                     'v3password': v3.Password}
else:
    KEYSTONE_LIBRARY = 'keystoneauth1'

    def _keystone():
        from keystoneauth1 import exceptions
        from keystoneauth1 import session
        from keystoneauth1.identity import generic
        from keystoneauth1.identity import v3
        return exceptions, session, {'password': generic.Password,
                                     'v3password': v3.Password}


def keystone_unavailable():
    """Why no Keystone session can be made here, or ''."""
    try:
        _keystone()
    except ImportError as exc:
        return 'it needs %s (the "keystone" extra): %s' % (KEYSTONE_LIBRARY,
                                                          exc)
    return ''


def keystone_session(auth_type, credentials, verify, timeout, user_agent):
    """``(session, plugin, errors)``: a Keystone session that gets its
    token through the password plugin ``auth_type`` with ``credentials``
    (keystoneauth's argument names; empty ones left out), and the
    library's base exception."""
    exceptions, session, plugins = _keystone()
    plugin = plugins[auth_type](**dict(
        (name, value) for name, value in credentials.items() if value))
    return (session.Session(auth=plugin, verify=verify, timeout=timeout,
                            user_agent=user_agent),
            plugin, exceptions.ClientException)
