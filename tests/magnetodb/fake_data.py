"""The storage behind the fakes: MagnetoDB's ``magnetodb.table_info`` rows
and each Cassandra node's JMX statistics, read from a JSON file.

Runs inside MagnetoDB 2015.1's own process (CPython 2.7), imported by
``sitecustomize`` when ``MAGNETODB_FAKE_DATA`` names the file::

    {"jolokia_nodes": ["http://127.0.0.1:8778/jolokia/", ...],
     "tables": [{"tenant": "P", "name": "T", "status": "ACTIVE",
                 "size": [n1, n2, n3], "item_count": [k1, k2, k3]}, ...]}

``size`` and ``item_count`` hold one value per node of ``jolokia_nodes``
(the ``jolokia_endpoint_list`` of MagnetoDB's own ``magnetodb-api.conf``
by default): ``null`` is a JMX bean missing on that node, a string is a
non-numeric statistic. A table may give its ``id`` (32 hex digits); else
one is derived from its tenant and name, so that it never changes.

Failures are driven by the data too: storage is down while a file named
``<data file>.down`` exists (checked on every query, so a test can take
storage down and bring it back), and a node that is not listed refuses
connections. The file is read again when its modification time changes.

Rows are kept the way Cassandra returns them for ``PRIMARY KEY (tenant,
name)`` with the Murmur3Partitioner: partitions ordered by the token of
the UTF-8 tenant (the driver's own Murmur3 token function), names in byte
order within a partition.
"""

import bisect
import datetime
import hashlib
import json
import os
import threading
import uuid

from cassandra import metadata

DATA_ENV = 'MAGNETODB_FAKE_DATA'
DEFAULT_NODES = [
    # MagnetoDB's own etc/magnetodb-api.conf lists these three.
    'http://127.0.0.1:8778/jolokia/',
    'http://127.0.0.2:8778/jolokia/',
    'http://127.0.0.3:8778/jolokia/',
]
# What MagnetoDB 2015.1 writes into the "schema" column for a table with
# one hash key "id" of type S (models.TableSchema(...).to_json()).
SCHEMA_JSON = (
    u'{"__model__": "TableSchema", "attribute_type_map": {"id": '
    u'{"__model__": "AttributeType", "type": "S"}}, "index_def_map": {}, '
    u'"key_attributes": ["id"]}')
# Statuses whose tables have no Cassandra table yet (no internal_name).
NOT_CREATED = (u'CREATING', u'CREATE_FAILED')


def token(tenant):
    """The Murmur3Partitioner token of a partition key, as the driver
    computes it."""
    return metadata.Murmur3Token.hash_fn(tenant.encode('utf-8'))


def _table_id(table):
    if table.get('id'):
        return uuid.UUID(hex=table['id'])
    digest = hashlib.md5(
        (table['tenant'] + u'\0' + table['name']).encode('utf-8'))
    return uuid.UUID(bytes=digest.digest())


class Storage(object):
    """One loaded data file: the table_info partitions and the JMX beans."""

    def __init__(self, document, loaded_at):
        self.nodes = list(document.get('jolokia_nodes') or DEFAULT_NODES)
        partitions = {}
        self.beans = {}  # (keyspace, column family) -> table
        for table in document['tables']:
            row = self._row(table, loaded_at)
            partitions.setdefault(row['tenant'], []).append(row)
            if row['internal_name']:
                key = (u'u_' + row['tenant'], u'u_' + row['id'].hex)
                self.beans[key] = table
        self.names = {}  # tenant -> the UTF-8 names of its rows, in order
        for tenant, rows in partitions.items():
            rows.sort(key=lambda row: row['name'].encode('utf-8'))
            self.names[tenant] = [row['name'].encode('utf-8') for row in rows]
        self.partitions = partitions
        self.ring = sorted((token(tenant), tenant.encode('utf-8'), tenant)
                           for tenant in partitions)
        self.ring_tokens = [entry[0] for entry in self.ring]

    @staticmethod
    def _row(table, loaded_at):
        table_id = _table_id(table)
        status = table.get('status', u'ACTIVE')
        internal_name = None
        if status not in NOT_CREATED:
            internal_name = u'"u_%s"."u_%s"' % (table['tenant'], table_id.hex)
        return {
            u'tenant': table['tenant'],
            u'name': table['name'],
            u'id': table_id,
            u'exists': 1,
            u'schema': SCHEMA_JSON,
            u'status': status,
            u'internal_name': internal_name,
            # Fresh: MagnetoDB marks a CREATING table older than its
            # schema_operation_timeout (300 s) CREATE_FAILED.
            u'last_update_date_time': loaded_at,
            u'creation_date_time': loaded_at,
        }

    def partition(self, tenant, names=()):
        """A partition's rows whose name (UTF-8 bytes) meets every
        ``(operator, name)`` restriction, found by bisection."""
        rows = self.partitions.get(tenant, [])
        keys = self.names.get(tenant, [])
        start, stop = 0, len(rows)
        for op, name in names:
            if op in ('=', '>='):
                start = max(start, bisect.bisect_left(keys, name))
            if op == '>':
                start = max(start, bisect.bisect_right(keys, name))
            if op in ('=', '<='):
                stop = min(stop, bisect.bisect_right(keys, name))
            if op == '<':
                stop = min(stop, bisect.bisect_left(keys, name))
        return rows[start:stop]

    def partitions_after(self, after_token):
        """Partitions whose token is greater, in token order; no
        wrap-around after the last token, as with TOKEN() > in CQL."""
        start = bisect.bisect_right(self.ring_tokens, after_token)
        for _, _, tenant in self.ring[start:]:
            yield self.partitions[tenant]

    def all_partitions(self):
        for _, _, tenant in self.ring:
            yield self.partitions[tenant]


class DataFile(object):
    """The data file named by ``MAGNETODB_FAKE_DATA``, reloaded on change."""

    def __init__(self, path):
        self.path = path
        self.down_path = path + '.down'
        self._lock = threading.Lock()
        self._mtime = None
        self._storage = None

    def storage_is_down(self):
        return os.path.exists(self.down_path)

    def storage(self):
        mtime = os.stat(self.path).st_mtime
        with self._lock:
            if mtime != self._mtime:
                with open(self.path) as f:
                    document = json.load(f)
                self._storage = Storage(document, datetime.datetime.utcnow())
                self._mtime = mtime
            return self._storage


_data_file = None


def data_file():
    """The process's DataFile (created on first use)."""
    global _data_file
    if _data_file is None:
        _data_file = DataFile(os.environ[DATA_ENV])
    return _data_file
