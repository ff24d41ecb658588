"""A Keystone token for the monitoring requests (``auth_type``).

A hardened MagnetoDB puts keystonemiddleware's ``tokenauth`` in front of
its monitoring pipeline; the collector then authenticates as a service
user, through the OpenStack library made for it (keystoneauth1, or
python-keystoneclient 1.3 on a MagnetoDB 2015.1 host: see
:func:`.compat.keystone_session`): a session with the password plugin,
which keeps the token and authenticates again when it is about to expire.

:class:`TokenSource` owns that session for the collector's life: one
token, reused across cycles, renewed when less than ``request_timeout``
of its life remains (a request sent with it must still pass validation)
and once when the API answers 401 (revoked, or Keystone's clock ahead).
Keystone is asked at most once per ``interval`` while it fails (the
start-up grace retries cycles every second; a wrong password retried
that often would trip Keystone's lockout of the user): down, slow
(every call bounded by ``request_timeout``) or refusing the credentials
is one ERROR through the collector's :class:`~.outages.OutageLog` that
names the user, the project and ``auth_url`` (never the password), and
its end one INFO.
"""

import os

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import opts

KEYSTONE = 'Keystone'

CERTIFICATE_FIX = ('set ca_file to the CA bundle that signed Keystone\'s '
                   'certificate')


class KeystoneError(Exception):
    """No token: the message names the user, project, URL and cause."""


def _cause(exc, timeout):
    """A cause that reads the same from one cycle to the next: the
    libraries' messages carry request ids and object addresses."""
    name = type(exc).__name__
    if 'Timeout' in name:  # python-keystoneclient's has an HTTP 408
        return 'no answer within %gs' % timeout
    status = getattr(exc, 'http_status', None)
    if status == 401:
        return 'Keystone refused the credentials (HTTP 401)'
    if status:
        return 'Keystone answered HTTP %s' % status
    if 'SSL' in name:
        return 'certificate verification failed; %s' % CERTIFICATE_FIX
    if 'Connect' in name or isinstance(exc, compat.OS_ERRORS):
        return 'cannot connect'
    return '%s: %s' % (name, compat.to_text(exc))


def token_source(settings, outages):
    """The collector's :class:`TokenSource`, or None without auth_type."""
    if not settings.auth_type:
        return None
    return TokenSource(settings, outages)


class TokenSource(object):
    """The collector's Keystone session: a token when asked, or
    :class:`KeystoneError`."""

    def __init__(self, settings, outages):
        self._settings = settings
        self._outages = outages
        credentials = dict((name, getattr(settings, name))
                           for name in opts.CREDENTIAL_NAMES)
        self._session, self._plugin, self._errors = compat.keystone_session(
            settings.auth_type, credentials,
            verify=settings.ca_file or True,
            timeout=settings.request_timeout,
            # Names the process in Keystone's log, as in the API's.
            user_agent='magnetodb-statsd-middleware (pid %d)' % os.getpid())
        # The library renews a token that expires within this many
        # seconds; a request sent with it is validated within them.
        self._plugin.MIN_TOKEN_LIFE_SECONDS = settings.request_timeout
        self._failure = None
        self._failed_at = 0.0

    @property
    def whom(self):
        """The user and project, as log lines and --check name them."""
        settings = self._settings
        user = settings.username
        domain = settings.user_domain_name or settings.user_domain_id
        project = settings.project_name or settings.project_id
        project_domain = (settings.project_domain_name
                          or settings.project_domain_id)
        return u"user '%s'%s, project '%s'%s at %s" % (
            user, u" (domain '%s')" % domain if domain else '', project,
            u" (domain '%s')" % project_domain if project_domain else '',
            settings.auth_url)

    def begin_cycle(self):
        """A new cycle asks Keystone again, unless it failed less than an
        interval ago."""
        if (self._failure is not None and compat.monotonic() - self._failed_at
                >= self._settings.interval):
            self._failure = None

    def token(self):
        """The kept token, or a new one when it is about to expire."""
        if self._failure is not None:  # asked again in a later cycle
            raise self._failure
        try:
            token = self._session.get_token()
        except (self._errors,) + compat.OS_ERRORS as exc:
            self._fail(_cause(exc, self._settings.request_timeout))
        if not token:  # a plugin without a token: a bug, said once
            self._fail('the plugin returned none')
        self._outages.succeeded(KEYSTONE)
        return token

    def _fail(self, cause):
        self._failure = KeystoneError('no token for %s: %s'
                                      % (self.whom, cause))
        self._failed_at = compat.monotonic()
        self._outages.failed(KEYSTONE, compat.to_text(self._failure))
        raise self._failure

    def renew(self):
        """A new token: the API refused the one kept (HTTP 401)."""
        self._plugin.invalidate()
        return self.token()
