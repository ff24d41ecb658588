import io

import setuptools

setuptools.setup(
    name='magnetodb-statsd-middleware',
    version='0.1.0',
    description='StatsD gauges of MagnetoDB table statistics, sent from '
                'inside magnetodb-api by a paste filter',
    long_description=io.open('README.rst', encoding='utf-8').read(),
    long_description_content_type='text/x-rst',
    license='Apache-2.0',
    # The filter and its demo only: tests/, benchmarks/ and tools/ are
    # packages too (run with python -m from a clone), never installed.
    packages=setuptools.find_packages(exclude=[
        'tests', 'tests.*', 'benchmarks', 'benchmarks.*', 'tools',
        'tools.*']),
    # CPython 2.7 (MagnetoDB 2015.1's own interpreter) and 3.10+.
    python_requires='>=2.7,!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*,!=3.4.*,'
                    '!=3.5.*,!=3.6.*,!=3.7.*,!=3.8.*,!=3.9.*',
    # The widest ranges that work, so that the host's versions win: a
    # MagnetoDB 2015.1 deployment has oslo.config 1.9.3, eventlet 0.17.4
    # and WebOb 1.4.1. statsd 4 cannot even be installed on 2.7 (it does
    # not say so itself); 3.3.0 is its last release for 2.7.
    install_requires=[
        'eventlet>=0.17.4',
        'oslo.config>=1.9.3',
        'WebOb>=1.4.1',
        'statsd>=3.3,<4; python_version < "3"',
        'statsd>=4.0,<5; python_version >= "3"',
    ],
    extras_require={
        # The demo serves a real paste pipeline, like magnetodb-api does.
        'demo': [
            'Paste>=2.0.2',
            'PasteDeploy>=1.5.2',
        ],
        # One emitter per cluster (coordination_url); add the backend's
        # client library, e.g. redis for redis://, pymemcache for
        # memcached://. On 2.7, tooz's Kilo line with the clients of its
        # time: it fits MagnetoDB 2015.1's pins (tooz 0.16+ and 1.x
        # upgrade its oslo.utils and stevedore, and MagnetoDB no longer
        # starts), and tooz 0.15's memcached client fails on pymemcache 2+
        # (which tooz itself would install).
        'coordination': [
            'tooz>=0.13.3,<0.16; python_version < "3"',
            'redis>=2.10,<3; python_version < "3"',
            'pymemcache>=1.2,<2; python_version < "3"',
            'tooz>=6.0; python_version >= "3"',
        ],
        # A token from Keystone for the monitoring requests (auth_type):
        # keystoneauth1 on CPython 3; on 2.7 what a MagnetoDB 2015.1
        # deployment already has (python-keystoneclient 1.3.4, pinned by
        # Kilo; keystoneauth1 did not exist yet), so the extra changes none
        # of its packages.
        'keystone': [
            'python-keystoneclient>=1.3,<2; python_version < "3"',
            'keystoneauth1>=3.4; python_version >= "3"',
        ],
        'test': [
            'python-keystoneclient>=1.3,<2; python_version < "3"',
            'keystoneauth1>=3.4; python_version >= "3"',
            # Real keystonemiddleware in front of the fixture API: on 2.7
            # MagnetoDB 2015.1's own release.
            'keystonemiddleware>=1.5.2,<1.6; python_version < "3"',
            'keystonemiddleware>=10; python_version >= "3"',
            'redis>=2.10,<3; python_version < "3"',
            'redis>=4; python_version >= "3"',
            'pymemcache>=1.2,<2; python_version < "3"',
            'pymemcache>=3.5; python_version >= "3"',
            'tooz>=0.13.3,<0.16; python_version < "3"',
            'tooz>=6.0; python_version >= "3"',
            'gunicorn>=19.3',
            # uWSGI from PyPI: 2.0.19.1 is the last for 2.7 (no Python
            # threads without enable-threads); 2.0.30 runs them always.
            'pyuwsgi>=2.0.19.1,<2.0.20; python_version < "3"',
            'pyuwsgi>=2.0.30,<2.1; python_version >= "3"',
            'Paste>=2.0.2',
            'PasteDeploy>=1.5.2',
            'fixtures>=3',
            'six>=1.9',
            'stevedore>=1.3',
            'PyYAML>=3.10',
            'pytest>=4.6',
            'pytest-timeout>=1.3',
        ],
    },
    entry_points={
        'console_scripts': [
            'magnetodb-statsd = magnetodb_statsd_middleware.cli:main',
            'magnetodb-statsd-demo = magnetodb_statsd_middleware.demo:main',
        ],
        'paste.filter_factory': [
            'statsd = magnetodb_statsd_middleware:filter_factory',
        ],
        'oslo.config.opts': [
            'magnetodb_statsd_middleware = '
            'magnetodb_statsd_middleware.opts:list_opts',
        ],
    },
    classifiers=[
        'Environment :: OpenStack',
        'Programming Language :: Python :: 2',
        'Programming Language :: Python :: 2.7',
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Programming Language :: Python :: 3.13',
        'License :: OSI Approved :: Apache Software License',
    ],
)
