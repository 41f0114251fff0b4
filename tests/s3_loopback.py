"""A real S3 API on loopback for DVC remote tests: moto's server in a thread, on a port the OS picks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@contextmanager
def s3_server(bucket: str) -> Iterator[str]:
    """moto's S3 on 127.0.0.1 with ``bucket`` made; yields the endpoint URL. Port 0 lets the OS give a free
    port when the server binds it, so parallel runs never race for one. Credentials come from the caller's
    environment (moto accepts any)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def stored_bytes(endpoint: str, bucket: str, prefix: str) -> tuple[int, int]:
    """(objects, bytes) stored under ``prefix`` in ``bucket``."""
    count = size = 0
    for page in s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            count += 1
            size += item["Size"]
    return count, size
