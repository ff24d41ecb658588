"""``python3 -m magnetodb_statsd_middleware.demo``: the demo's main."""

import sys

from magnetodb_statsd_middleware.demo import main

sys.exit(main())
