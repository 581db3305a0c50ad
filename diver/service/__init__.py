"""One engine process per data directory, and its clients (``open_engine``).

``diver.service.server`` is the process that owns a data directory's ``Engine`` (lock, embedding model,
indexes); ``diver.service.client`` holds ``RemoteEngine``/``RemoteCollection``, proxies with the
``Engine``/``Collection`` methods the adapters use; ``diver.service.protocol`` is the wire format.
"""

from diver.service.client import RemoteCollection, RemoteEngine, local_engine, open_engine

__all__ = ["RemoteCollection", "RemoteEngine", "local_engine", "open_engine"]
