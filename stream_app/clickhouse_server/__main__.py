"""`python -m stream_app.clickhouse_server`: the server process (see serve.py)."""

import sys

from stream_app.clickhouse_server.serve import main

sys.exit(main())
