"""Fixtures every kind of test may use: the suite's own PostgreSQL and object store (started on demand)."""

from tests.support.servers import bucket, object_store, postgres_server, postgres_url

__all__ = ["bucket", "object_store", "postgres_server", "postgres_url"]
