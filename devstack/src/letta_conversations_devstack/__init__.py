"""Development tooling, not used by the server itself: a local Letta stack (Letta 0.16.8 server,
PostgreSQL + pgvector, Valkey, a scripted model) from PyPI, and the in-memory Letta double of the
fast suite (``double``); both agents run the scripted agent language of ``script``, and ``sse``
writes and reads their streams."""
