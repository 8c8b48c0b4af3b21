"""WebSocket streams of new warehouse rows: ``/stream/signals`` (the default), ``/stream/events``
and ``/stream/risk``.

- ``router``: the endpoints, their keys and filters, the frames and close codes;
- ``topics``: each topic's table, payload fields and filters;
- ``broker``: per-connection bounded queues, batched sends, send timeout and eviction;
- ``cursors`` and ``hub``: the tailers that read each table after a cursor and publish.
"""

from omniwatch.serving.streams.hub import StreamHub, serving_streams
from omniwatch.serving.streams.router import router

__all__ = ["StreamHub", "router", "serving_streams"]
