"""This host's API health as gauges: ``<prefix>.health.<host>.<subsystem>``
(or ``<prefix>.health`` labeled ``host`` and ``subsystem``).

MagnetoDB's ``/healthcheck?fullcheck=true`` answers HTTP 200 or 503 with
``{"API": "OK", "Storage": "ERROR", "Messaging": "Not Implemented"}``. Each
subsystem, lower-cased, becomes a gauge, 1 for OK and 0 otherwise ("Not
Implemented" sends nothing); ``overall`` is 1 only for HTTP 200 without an
ERROR, and 0 when the check is unreachable, answers 503 or answers
nonsense.
"""

import collections
import json

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import httpget
from magnetodb_statsd_middleware import metrics

NOT_IMPLEMENTED = 'not implemented'
OVERALL = 'overall'


class HealthError(Exception):
    """The health check could not be read; the message is the cause."""


def _subsystems(text, shown):
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise HealthError('%s did not return JSON: %s' % (shown, exc))
    if not isinstance(body, dict):
        raise HealthError('%s did not return a JSON object' % shown)
    return body


# What to send, the failure if any, and whether the server answered at
# all (False: refused, timed out; the server may still be starting).
HealthCheck = collections.namedtuple('HealthCheck',
                                     'measurements error answered')


def _same_origin(first, second):
    return compat.urlsplit(first)[:2] == compat.urlsplit(second)[:2]


def health_measurements(settings, auth=None):
    """The :data:`HealthCheck` of this host, read now.

    With ``auth`` (a :class:`~.keystone.TokenSource`), a health check on
    the monitoring API's origin (which may sit behind the same tokenauth)
    gets the token too, when there is one: Keystone failing changes
    nothing here, and no token goes to another origin.
    """
    host = settings.host_name
    if auth is not None and not _same_origin(settings.healthcheck_url,
                                             settings.monitoring_url):
        auth = None
    getter = httpget.HttpGetter(settings.healthcheck_url, settings, auth,
                                token_required=False)
    params = compat.parse_qsl(getter.query)
    try:
        status, text, shown = getter.get(getter.path, params,
                                         accept=(200, 503))
        body = _subsystems(text, shown)
    except (httpget.HttpError, HealthError) as exc:
        # Nonsense (HealthError) or a status is an answer; a refused
        # connection or a timeout (an HttpError without a status) is not.
        answered = not isinstance(exc, httpget.HttpError) or (
            exc.status is not None)
        return HealthCheck([(metrics.HEALTH, (host, OVERALL), 0)],
                           compat.to_text(exc), answered)
    finally:
        getter.close()
    measurements = []
    healthy = status == 200
    for subsystem, state in sorted(body.items()):
        subsystem = compat.to_text(subsystem).lower()
        state = compat.to_text(state).lower()
        if state == NOT_IMPLEMENTED or not subsystem:
            continue
        ok = state == 'ok'
        healthy = healthy and (ok or state != 'error')
        measurements.append((metrics.HEALTH, (host, subsystem), int(ok)))
    measurements.append((metrics.HEALTH, (host, OVERALL), int(healthy)))
    return HealthCheck(measurements, '', True)
