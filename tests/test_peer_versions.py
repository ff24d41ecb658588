"""Every version of a real peer or library that the docs name is the one
the suite runs.

Each claim is a phrase of a doc and the version it names, with where the
suite's own copy says its version: the npm package's ``package.json``,
Debian's package database, a pinned virtualenv's metadata, this
interpreter's installed distributions (the claims about CPython 2.7's
libraries are checked in kilo-unit, those about CPython 3's elsewhere), or
MagnetoDB 2015.1's constraints. A version is ``1.2`` (the same release, or
one of its ``1.2.x``), ``9+`` (that major release or a later one) or
``0.13.3-0.15`` (from the first through any ``0.15.x``). A doc that names
another version, or a peer that installs another, fails here.
"""

import json
import os
import re
import sys

import pytest

from tests.support import peers

PY2 = sys.version_info[0] == 2
MAGNETODB_CONSTRAINTS = os.path.join(peers.ROOT, 'tests', 'magnetodb',
                                     'constraints-2015.1.txt')


def npm(package):
    with open(os.path.join(peers.CACHE, 'statsd', 'node_modules', package,
                           'package.json')) as f:
        return json.load(f)['version']


def debian(package):
    """The upstream version of an installed Debian package (no epoch, no
    Debian revision)."""
    ran = peers.run(['dpkg-query', '-W', '-f', '${Version}', package])
    assert ran.returncode == 0, ran.stderr
    return re.sub(r'^[0-9]+:', '', ran.stdout).rsplit('-', 1)[0]


def venv(folder, distribution):
    """The version of ``distribution`` in a virtualenv of
    tools/install-peers.sh."""
    ran = peers.run([os.path.join(peers.CACHE, folder, 'bin', 'python'),
                     '-c', 'import sys; from importlib import metadata; '
                     'print(metadata.version(sys.argv[1]))', distribution])
    assert ran.returncode == 0, ran.stderr
    return ran.stdout.strip()


def here(distribution):
    """The version of ``distribution`` installed for this interpreter."""
    if PY2:
        import pkg_resources
        return pkg_resources.get_distribution(distribution).version
    from importlib import metadata
    return metadata.version(distribution)


def magnetodb_pin(distribution):
    """The version MagnetoDB 2015.1's environment is built with."""
    with open(MAGNETODB_CONSTRAINTS) as f:
        for line in f:
            name, _, version = line.split('#')[0].strip().partition('==')
            if name.lower() == distribution.lower():
                return version
    raise AssertionError('%s is not pinned in %s' % (
        distribution, MAGNETODB_CONSTRAINTS))


# (doc, phrase, version, reader, its argument(s)); the version is in the
# phrase.
ANY_RUNTIME = [
    ('doc/source/receivers/etsy-statsd.rst', 'which the tests run (0.9.0)',
     '0.9.0', npm, 'statsd'),
    ('doc/source/receivers/graphite.rst', 'statsd 0.9.0 turns its', '0.9.0',
     npm, 'statsd'),
    ('doc/source/metrics.rst', 'Etsy statsd 0.9 to carbon 1.1 tags', '0.9',
     npm, 'statsd'),
    ('README.rst', 'real Keystone (PyPI ``keystone`` 30.0.0', '30.0.0',
     venv, ('keystone', 'keystone')),
    ('doc/source/keystone.rst', 'A real Keystone (PyPI ``keystone`` 30.0.0',
     '30.0.0', venv, ('keystone', 'keystone')),
    ('doc/source/contributor/testing.rst', 'Keystone (PyPI ``keystone`` '
     '30.0.0', '30.0.0', venv, ('keystone', 'keystone')),
    ('doc/source/receivers/monasca.rst', 'monasca-agent 10.0.0', '10.0.0',
     venv, ('monasca-agent', 'monasca-agent')),
    ('doc/source/receivers/monasca.rst', 'monasca-common 3.8.0', '3.8.0',
     venv, ('monasca-agent', 'monasca-common')),
    ('doc/source/receivers/monasca.rst', 'monasca-statsd 2.7.0', '2.7.0',
     venv, ('monasca-agent', 'monasca-statsd')),
    ('doc/source/receivers/collectd.rst', "Debian's collectd 5.12", '5.12',
     debian, 'collectd-core'),
    ('doc/source/receivers/gnocchi.rst', '(Debian 12 ships 4.4.2)', '4.4.2',
     debian, 'gnocchi-statsd'),
    ('doc/source/receivers/gnocchi.rst', "Debian's gnocchi-statsd 4.4.2",
     '4.4.2', debian, 'gnocchi-statsd'),
    ('doc/source/receivers/graphite.rst', 'graphite-carbon 1.1.7', '1.1.7',
     debian, 'graphite-carbon'),
    ('doc/source/receivers/graphite.rst', 'graphite-web 1.1.8', '1.1.8',
     debian, 'graphite-web'),
    ('doc/source/receivers/graphite.rst', 'carbon 1.1 stores', '1.1',
     debian, 'graphite-carbon'),
    ('doc/source/deployment.rst', "Debian's 2.0.21 on 3.11", '2.0.21',
     debian, 'uwsgi-core'),
    ('doc/source/deployment.rst', "Debian's 2.0.21 on 3.11", '3.11',
     debian, 'python3'),
    ('doc/source/deployment.rst', '(Debian 12 ships 2.0.21)', '2.0.21',
     debian, 'uwsgi-core'),
    # MagnetoDB 2015.1's own environment.
    ('README.rst', 'oslo.config 1.9.3, eventlet 0.17.4, WebOb 1.4.1',
     '1.9.3', magnetodb_pin, 'oslo.config'),
    ('README.rst', 'oslo.config 1.9.3, eventlet 0.17.4, WebOb 1.4.1',
     '0.17.4', magnetodb_pin, 'eventlet'),
    ('README.rst', 'oslo.config 1.9.3, eventlet 0.17.4, WebOb 1.4.1',
     '1.4.1', magnetodb_pin, 'WebOb'),
    ('doc/source/install.rst', 'PasteDeploy 1.5.2, gunicorn 19.3', '1.5.2',
     magnetodb_pin, 'PasteDeploy'),
    ('doc/source/install.rst', 'PasteDeploy 1.5.2, gunicorn 19.3', '19.3',
     magnetodb_pin, 'gunicorn'),
    ('doc/source/keystone.rst', 'has (1.3.4): nothing of MagnetoDB',
     '1.3.4', magnetodb_pin, 'python-keystoneclient'),
    ('doc/source/keystone.rst', 'its keystonemiddleware 1.5.2 ``tokenauth``',
     '1.5.2', magnetodb_pin, 'keystonemiddleware'),
]

# This interpreter's libraries: kilo-unit's on CPython 2.7, current ones
# on CPython 3.
CPYTHON_27 = [
    ('doc/source/contributor/testing.rst', 'oslo.config 1.9.3, eventlet '
     '0.17.4, WebOb 1.4.1, gunicorn 19.3 and statsd 3.3', version, here,
     dist)
    for dist, version in [('oslo.config', '1.9.3'), ('eventlet', '0.17.4'),
                          ('WebOb', '1.4.1'), ('gunicorn', '19.3'),
                          ('statsd', '3.3')]
] + [
    ('doc/source/install.rst', 'PasteDeploy 1.5.2', '1.5.2', here,
     'PasteDeploy'),
    ('doc/source/install.rst', 'tooz 0.13.3-0.15 with redis 2.10',
     '0.13.3-0.15', here, 'tooz'),
    ('doc/source/install.rst', 'tooz 0.13.3-0.15 with redis 2.10', '2.10',
     here, 'redis'),
    ('doc/source/keystone.rst', 'python-keystoneclient 1.3.4 on 2.7 '
     '(keystonemiddleware 1.5.2)', '1.3.4', here, 'python-keystoneclient'),
    ('doc/source/keystone.rst', 'python-keystoneclient 1.3.4 on 2.7 '
     '(keystonemiddleware 1.5.2)', '1.5.2', here, 'keystonemiddleware'),
    ('doc/source/deployment.rst', '2.0.30 on 3.x and 2.0.19.1 on 2.7',
     '2.0.19.1', here, 'pyuwsgi'),
    # tools/py27-common.sh makes this virtualenv and MagnetoDB's alike.
    ('doc/source/install.rst', 'virtualenv (pip 20.3.4, setuptools 44)',
     '20.3.4', here, 'pip'),
    ('doc/source/install.rst', 'virtualenv (pip 20.3.4, setuptools 44)',
     '44', here, 'setuptools'),
]
CPYTHON_3 = [
    ('doc/source/install.rst', 'oslo.config 9+', '9+', here, 'oslo.config'),
    ('doc/source/install.rst', 'WebOb 1.8', '1.8', here, 'WebOb'),
    ('doc/source/install.rst', 'statsd 4,', '4', here, 'statsd'),
    ('doc/source/install.rst', 'tooz 6+', '6+', here, 'tooz'),
    ('doc/source/keystone.rst', 'CPython 3 (keystonemiddleware 13)', '13',
     here, 'keystonemiddleware'),
    ('doc/source/deployment.rst', "PyPI's uWSGI 2.0.30 on 3.x", '2.0.30',
     here, 'pyuwsgi'),
]
CLAIMS = ANY_RUNTIME + (CPYTHON_27 if PY2 else CPYTHON_3)


def _release(version):
    """``'2.0.19.1.post0'`` -> ``(2, 0, 19, 1)``."""
    return tuple(int(part) for part in
                 re.match(r'[0-9]+(\.[0-9]+)*', version).group(0).split('.'))


def matches(actual, claimed):
    """Whether release ``actual`` is what ``claimed`` names."""
    release = _release(actual)
    if claimed.endswith('+'):
        return release >= _release(claimed[:-1])
    if '-' in claimed:
        first, last = claimed.split('-')
        return (_release(first) <= release and
                release[:len(_release(last))] <= _release(last))
    return release[:len(_release(claimed))] == _release(claimed)


def _doc(path):
    with open(os.path.join(peers.ROOT, path)) as f:
        return ' '.join(f.read().split())


@pytest.mark.parametrize('doc, phrase, claimed, reader, argument', CLAIMS,
                         ids=['%s:%s-%s' % (
                             os.path.basename(claim[0]),
                             claim[4][-1] if isinstance(claim[4], tuple)
                             else claim[4], claim[2]) for claim in CLAIMS])
def test_the_named_version_is_the_one_run(doc, phrase, claimed, reader,
                                          argument):
    assert phrase in _doc(doc), 'the doc no longer says it: fix CLAIMS'
    assert claimed.rstrip('+').split('-')[0] in phrase
    arguments = argument if isinstance(argument, tuple) else (argument,)
    actual = reader(*arguments)
    assert matches(actual, claimed), '%s names %s, the suite runs %s' % (
        doc, claimed, actual)


@pytest.mark.parametrize('actual, claimed, result', [
    ('0.9.0', '0.9', True), ('0.9.0', '0.9.0', True), ('0.10.0', '0.9',
                                                        False),
    ('2.0.19.1.post0', '2.0.19.1', True), ('2.0.19', '2.0.19.1', False),
    ('10.7.0', '9+', True), ('8.0.0', '9+', False),
    ('0.15.2', '0.13.3-0.15', True), ('0.13.2', '0.13.3-0.15', False),
    ('0.16.0', '0.13.3-0.15', False), ('19.3.0', '19.3', True),
    ('19.30.0', '19.3', False),
])
def test_a_version_matches_only_what_it_names(actual, claimed, result):
    assert matches(actual, claimed) is result
