"""An in-memory stand-in for ``pyjolokia.urlopen`` (pyjolokia 0.3.1): the
Jolokia agents of the Cassandra nodes, as MagnetoDB 2015.1's
``get_table_statistics`` reads them.

For each node of ``jolokia_endpoint_list``, MagnetoDB POSTs one bulk request
with one item per metric it was asked for:

- ``exec estimateKeys`` on
  ``org.apache.cassandra.db:type=ColumnFamilies,keyspace=u_<tenant>,
  columnfamily=u_<id hex>`` -> the node's item count;
- ``read`` of ``org.apache.cassandra.metrics:type=ColumnFamily,
  keyspace=u_<tenant>,scope=u_<id hex>,name=TotalDiskSpaceUsed``
  -> ``{"Count": <bytes on the node>}``.

Each answer item echoes its request, as Jolokia does, and carries the
node's value from ``fake_data``; a bean that does not exist on the node (an
unknown keyspace/column family, or ``null`` in the data) is Jolokia's 404
item without a ``value``. A node that is not in the data refuses the
connection.
"""

import io
import json
import socket
import time

import fake_data
from six.moves.urllib import error as urlerror

_METRICS = {
    ('exec', 'org.apache.cassandra.db:type=ColumnFamilies'): (
        'item_count', 'columnfamily'),
    ('read', 'org.apache.cassandra.metrics:type=ColumnFamily'): (
        'size', 'scope'),
}


def _bean(mbean):
    """``(domain:type, {key: value})`` of an ObjectName string."""
    domain, _, keys = mbean.partition(':')
    properties = dict(item.split('=', 1) for item in keys.split(',')
                      if '=' in item)
    return '%s:type=%s' % (domain, properties.get('type')), properties


def _value(storage, node, request):
    """``(metric, the node's value)``; the value is None where Jolokia
    finds no such bean."""
    kind, properties = _bean(request.get('mbean') or '')
    metric = _METRICS.get((request.get('type'), kind))
    if metric is None:
        return None, None
    name, family_key = metric
    if request['type'] == 'exec':
        wanted = request.get('operation') == 'estimateKeys'
    else:
        wanted = properties.get('name') == 'TotalDiskSpaceUsed'
    table = storage.beans.get((properties.get('keyspace'),
                               properties.get(family_key)))
    if not wanted or table is None:
        return name, None
    return name, table[name][node]


def _answer(storage, node, request):
    """One item of Jolokia's bulk answer."""
    item = {'request': request, 'timestamp': int(time.time())}
    metric, value = _value(storage, node, request)
    if value is None:
        item.update(status=404,
                    error_type='javax.management.InstanceNotFoundException',
                    error='javax.management.InstanceNotFoundException : %s'
                    % request.get('mbean'))
    elif metric == 'size':
        item.update(status=200, value={'Count': value})
    else:
        item.update(status=200, value=value)
    return item


def urlopen(request, timeout=None):
    """What pyjolokia's ``urlopen(Request(url, json), timeout=...)`` gets
    from the node's Jolokia agent."""
    # A real round trip waits on a socket: let other greenthreads run.
    time.sleep(0)
    url = request.get_full_url()
    storage = fake_data.data_file().storage()
    if url not in storage.nodes:
        raise urlerror.URLError(socket.error(111, 'Connection refused'))
    node = storage.nodes.index(url)
    body = json.loads(request.get_data().decode('utf-8'))
    if isinstance(body, dict):
        answer = _answer(storage, node, body)
    else:
        answer = [_answer(storage, node, item) for item in body]
    return io.BytesIO(json.dumps(answer).encode('utf-8'))


def install(pyjolokia_module):
    """Replace ``urlopen`` in the imported ``pyjolokia`` module."""
    pyjolokia_module.urlopen = urlopen
