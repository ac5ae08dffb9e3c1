"""The suite's own servers answer as the backends will use them: PostgreSQL over TCP on 127.0.0.1, and an
S3 gateway that stores, lists and deletes objects, and refuses a wrong secret."""

from __future__ import annotations

import psycopg
import pytest
from botocore.exceptions import ClientError

from devtools.object_store import ObjectStore
from tests.support.servers import Bucket


def test_postgres_answers_over_tcp_on_loopback(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute(
            "SELECT inet_server_addr()::text, current_setting('server_version_num')"
        ).fetchone()
    assert row is not None
    assert row[0].startswith("127.0.0.1")
    assert int(row[1]) >= 180000


def test_object_store_keeps_lists_and_deletes(bucket: Bucket) -> None:
    client = bucket.store.client()
    client.put_object(Bucket=bucket.name, Key="a/one", Body=b"ciphertext")
    assert client.get_object(Bucket=bucket.name, Key="a/one")["Body"].read() == b"ciphertext"
    listed = client.list_objects_v2(Bucket=bucket.name, Prefix="a/")
    assert [item["Key"] for item in listed.get("Contents", [])] == ["a/one"]
    client.delete_object(Bucket=bucket.name, Key="a/one")
    assert client.list_objects_v2(Bucket=bucket.name, Prefix="a/").get("KeyCount") == 0


def test_object_store_refuses_a_wrong_secret(object_store: ObjectStore, bucket: Bucket) -> None:
    impostor = ObjectStore(object_store.base_dir, access_key=object_store.access_key, secret_key="wrong")
    impostor.ports = object_store.ports
    with pytest.raises(ClientError):
        impostor.client().put_object(Bucket=bucket.name, Key="x", Body=b"x")
