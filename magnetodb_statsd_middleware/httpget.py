"""Bounded HTTP GETs to the local API server, with one-line failures.

Every request, body included, must finish within ``request_timeout`` and
its body must fit ``max_response_bytes``: a slow or runaway server can
cost a cycle, never the process. Failures become :class:`HttpError` whose
message names the request (without user information) and the cause, so
that a refused connection is logged as one line, not as a traceback; a
status or certificate failure says what it means and what fixes it.

HTTPS certificates and host names are always verified, against
``ca_file`` when it is set, through an SSL context of our own: what the
rest of the process trusts is left as it is.

With a :class:`~.keystone.TokenSource`, each request carries its token
as ``X-Auth-Token``, and a 401 gets one more try with a renewed token.
"""

import os
import socket
import ssl

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import keystone
from magnetodb_statsd_middleware import runtime

_READ_CHUNK = 256 * 1024


# What a refusal means here, and what fixes it.
STATUS_MEANINGS = {
    401: 'the API asks for a token (an auth filter such as keystonemiddleware'
         '\'s tokenauth is in front of it) and the collector sends none: '
         'set auth_type and the service user\'s credentials (or '
         'auth_section)',
    403: 'the API refuses the collector (an auth or policy filter is in front '
         'of it): give the collector\'s Keystone user (auth_type or '
         'auth_section) the role that filter asks for',
}
# A 401 to a request that carried a token just renewed.
TOKEN_REFUSED = ('the API refused the collector\'s Keystone token, also a '
                 'new one: keystonemiddleware cannot validate it (check its '
                 'own credentials and auth_url) or trusts another Keystone')
CERTIFICATE_FIX = ('set ca_file to the CA bundle that signed the server\'s '
                   'certificate')


def check_ca_file(path):
    """Why ``path`` cannot verify certificates, or '' when it can."""
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) + compat.OS_ERRORS as exc:
        return compat.to_text(exc) or type(exc).__name__
    return ''


class HttpError(Exception):
    """A request failed; the message is the cause.

    ``status`` is the HTTP status of an answer refused for it, None when
    no answer came (refused connection, timeout, broken body).
    """

    def __init__(self, message, status=None):
        Exception.__init__(self, message)
        self.status = status


def redact_url(url):
    """The URL without user information, fit for a log line."""
    parts = compat.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ''
    if ':' in netloc:
        netloc = '[%s]' % netloc
    if parts.port:
        netloc += ':%d' % parts.port
    return compat.urlunsplit(parts._replace(netloc=netloc))


class HttpGetter(object):
    """GETs against one origin over one kept-alive connection.

    With ``auth`` (a :class:`~.keystone.TokenSource`), requests carry its
    token; without one (Keystone failing) they fail with its
    :class:`~.keystone.KeystoneError`, unless ``token_required`` is False:
    then they go without.
    """

    def __init__(self, url, settings, auth=None, token_required=True):
        self._settings = settings
        self._auth = auth
        self._token_required = token_required
        parts = compat.urlsplit(url)
        self._https = parts.scheme == 'https'
        self._host = parts.hostname
        self._port = parts.port
        self.path = parts.path.rstrip('/')
        self.query = parts.query
        self._origin = redact_url(
            compat.urlunsplit(parts[:2] + ('', '', '')))
        self._conn = None
        # Names the polling process in the API server's access log.
        self._headers = {'Accept': 'application/json',
                         'User-Agent': 'magnetodb-statsd-middleware (pid %d)'
                                       % os.getpid()}

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self):
        if self._conn is None:
            http = compat.http_client
            timeout = self._settings.request_timeout
            if self._https:
                context = ssl.create_default_context(
                    cafile=self._settings.ca_file or None)
                self._conn = http.HTTPSConnection(
                    self._host, self._port, timeout=timeout,
                    context=context)
            else:
                self._conn = http.HTTPConnection(self._host, self._port,
                                                 timeout=timeout)
        return self._conn

    def get(self, path, params, accept=(200,)):
        """``(status, text, shown)`` of a GET, or HttpError with a cause.

        A status outside ``accept`` is a failure, and its body is not read;
        ``shown`` is the request as it may appear in a log line. A 401 to
        a request with a token is tried once more with a renewed one; no
        token to be had is the :class:`~.keystone.KeystoneError`.
        """
        query = compat.urlencode(params)
        target = path + ('?' + query if query else '')
        shown = 'GET %s%s' % (self._origin, target)
        token = self._token(renew=False)
        try:
            return self._get(target, shown, accept, token, renewed=False)
        except HttpError as exc:
            if exc.status != 401 or token is None:
                raise
        # Refused (revoked, or expired sooner than Keystone said): once
        # more with a new token.
        token = self._token(renew=True)
        return self._get(target, shown, accept, token, renewed=True)

    def _token(self, renew):
        if self._auth is None:
            return None
        try:
            return self._auth.renew() if renew else self._auth.token()
        except keystone.KeystoneError:
            if self._token_required:
                raise
            return None

    def _get(self, target, shown, accept, token, renewed):
        deadline = compat.monotonic() + self._settings.request_timeout
        headers = self._headers
        if token is not None:
            headers = dict(headers, **{'X-Auth-Token': token})
        try:
            conn = self._connection()
            conn.request('GET', target, headers=headers)
            response = conn.getresponse()
            if response.status not in accept:
                meaning = STATUS_MEANINGS.get(response.status)
                if response.status == 401 and token is not None:
                    meaning = TOKEN_REFUSED if renewed else 'token refused'
                raise HttpError('%s failed: HTTP %d%s' % (
                    shown, response.status,
                    ': ' + meaning if meaning else ''), response.status)
            body = self._read_body(response, deadline, shown)
        except HttpError:
            self.close()
            raise
        except compat.OS_ERRORS + (compat.http_client.HTTPException,
                                   ssl.CertificateError) as exc:
            self.close()
            raise HttpError('%s failed: %s' % (shown, self._reason(exc)))
        try:
            return response.status, body.decode('utf-8'), shown
        except UnicodeDecodeError as exc:
            raise HttpError('%s returned a body that is not UTF-8: %s'
                            % (shown, exc))

    def _reason(self, exc):
        if isinstance(exc, socket.timeout):
            return 'no answer within %gs' % self._settings.request_timeout
        reason = compat.to_text(exc) or type(exc).__name__
        if isinstance(exc, ssl.CertificateError) or (
                isinstance(exc, ssl.SSLError)
                and 'CERTIFICATE_VERIFY_FAILED' in reason):
            return '%s; %s' % (reason, CERTIFICATE_FIX)
        return reason

    def _read_body(self, response, deadline, shown):
        limit = self._settings.max_response_bytes
        length = response.getheader('Content-Length')
        if length and length.isdigit() and int(length) > limit:
            raise HttpError('%s returned %s bytes, more than '
                            'max_response_bytes (%d)' % (shown, length, limit))
        chunks = []
        size = 0
        while True:
            remaining = deadline - compat.monotonic()
            if remaining <= 0:
                raise socket.timeout()
            if self._conn.sock is not None:
                self._conn.sock.settimeout(remaining)
            chunk = response.read(_READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise HttpError('%s returned more than max_response_bytes '
                                '(%d)' % (shown, limit))
            chunks.append(chunk)
            runtime.cooperative_yield()
        if response.will_close:
            self.close()
        return b''.join(chunks)
