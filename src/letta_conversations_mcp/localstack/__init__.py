"""A local Letta stack (Letta 0.16.8 server, PostgreSQL + pgvector, Valkey, a scripted model) from PyPI."""
