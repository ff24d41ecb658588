import setuptools

setuptools.setup(
    name='magnetodb-statsd-middleware',
    version='0.1.0',
    description='StatsD gauges of MagnetoDB table statistics, sent from '
                'inside magnetodb-api by a paste filter',
    long_description=open('README.rst').read(),
    long_description_content_type='text/x-rst',
    license='Apache-2.0',
    packages=setuptools.find_packages(exclude=['tests', 'tests.*']),
    python_requires='>=3.10',
    install_requires=[
        'eventlet>=0.33',
        'oslo.config>=9.0',
        'statsd>=4.0,<5',
        'WebOb>=1.8',
    ],
    extras_require={
        # The demo serves a real paste pipeline, like magnetodb-api does.
        'demo': [
            'Paste>=3.5',
            'PasteDeploy>=3.0',
        ],
        # One emitter per cluster (coordination_url); add the backend's
        # client library, e.g. redis for redis://.
        'coordination': [
            'tooz>=6.0',
        ],
        'test': [
            'redis>=4',
            'tooz>=6.0',
            'gunicorn>=21',
            'Paste>=3.5',
            'PasteDeploy>=3.0',
            'fixtures>=4',
            'pytest>=7',
            'pytest-timeout>=2',
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
        'Programming Language :: Python :: 3',
        'License :: OSI Approved :: Apache Software License',
    ],
)
