"""Assignment images: the base image plus the autograder source and its ``setup.sh``.

As on Gradescope, the autograder zip lands in ``/autograder/source``, ``run_autograder``
is copied to ``/autograder/run_autograder`` and ``setup.sh`` runs once, as root, at build
time. Builds get the host network (grading never does) and the host's CA bundle and proxy
settings, so an unmodified ``setup.sh`` that runs ``apt-get install`` and
``pip3 install -r requirements.txt`` works behind a TLS-intercepting proxy.

Images are tagged by a hash of the base image id and the source files, built once and
cached on the Docker host; concurrent builds of the same tag are serialised with a file
lock, so two workers on one host never build the same image twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
import urllib3
from docker.errors import APIError, DockerException, ImageNotFound

from greengrader.errors import ExecutorError, ImageBuildError
from greengrader.grading.executors.docker_client import connect
from greengrader.settings import Settings, get_settings

LABEL_SOURCE = "greengrader.source"
LABEL_ASSIGNMENT = "greengrader.assignment"
BUILDER_VERSION = "2"  # bump when the Dockerfile below changes, so images are rebuilt
CA_PATH = "/usr/local/share/greengrader/host-ca.crt"
MAX_LOG_CHARS = 100_000
CACHE_TTL_S = 60.0
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "ALL_PROXY")
CA_ENV = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS")

DOCKERFILE = """\
FROM {base}
COPY source/ /autograder/source/
{ca_copy}
RUN if [ ! -f /autograder/source/run_autograder ]; then echo "the autograder has no run_autograder" >&2; exit 1; fi \\
 && cp /autograder/source/run_autograder /autograder/run_autograder \\
 && chmod +x /autograder/run_autograder \\
 && mkdir -p /autograder/results /autograder/submission
RUN {ca_env} cd /autograder/source && if [ -f setup.sh ]; then bash ./setup.sh; fi
RUN rm -f /etc/apt/apt.conf.d/99greengrader-ca && mkdir -p /autograder/results
WORKDIR /autograder
"""


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    built: bool  # False when it was already cached
    log: str = ""
    seconds: float = 0.0


class ImageBuilder:
    """Builds and caches assignment images on one Docker host."""

    def __init__(self, settings: Settings | None = None, client: docker.DockerClient | None = None) -> None:
        self.settings = settings or get_settings()
        self._client = client
        # tag or base image -> (value, checked at); saves two daemon calls per job
        self._seen: dict[str, tuple[str, float]] = {}

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect(600)  # a build streams for minutes
        return self._client

    def tag_for(self, source: Mapping[str, bytes]) -> str:
        """Content-addressed tag: base image id + builder version + every source file."""
        try:
            base_id = self._remember(self.settings.base_image, lambda: str(self.client.images.get(self.settings.base_image).id))
        except ImageNotFound as exc:
            raise ExecutorError(
                f"base image {self.settings.base_image} is missing: run scripts/build-base-image.sh"
            ) from exc
        digest = hashlib.sha256(f"{BUILDER_VERSION}\0{base_id}\0".encode())
        for name in sorted(source):
            digest.update(name.encode() + b"\0" + hashlib.sha256(source[name]).digest())
        return f"{self.settings.image_prefix}:{digest.hexdigest()[:20]}"

    def exists(self, tag: str) -> bool:
        try:
            self._remember(tag, lambda: str(self.client.images.get(tag).id))
            return True
        except ImageNotFound:
            return False

    def _remember(self, key: str, fetch: Callable[[], str]) -> str:
        hit = self._seen.get(key)
        if hit is not None and time.monotonic() - hit[1] < CACHE_TTL_S:
            return hit[0]
        value = fetch()
        self._seen[key] = (value, time.monotonic())
        return value

    def forget(self) -> None:
        """Drop cached lookups (after an image was pruned or rebuilt)."""
        self._seen.clear()

    def ensure(self, source: Mapping[str, bytes], assignment: str = "") -> BuiltImage:
        """The image for ``source``, building it if this host does not have it yet."""
        tag = self.tag_for(source)
        if self.exists(tag):
            return BuiltImage(tag, built=False)
        with self._lock(tag):
            if self.exists(tag):  # another worker built it while we waited
                return BuiltImage(tag, built=False)
            return self._build(tag, source, assignment)

    @contextmanager
    def _lock(self, tag: str) -> Iterator[None]:
        lock_dir = self.settings.home / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        path = lock_dir / ("build-" + hashlib.sha256(tag.encode()).hexdigest()[:16] + ".lock")
        with path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _build(self, tag: str, source: Mapping[str, bytes], assignment: str) -> BuiltImage:
        started = time.monotonic()
        bound = self.settings.image_build_timeout_s
        context = build_context(self.settings.base_image, source, self._ca_bundle())
        lines: list[str] = []
        error = None
        try:
            # The HTTP timeout bounds a silent setup.sh; the deadline one that keeps printing.
            # Closing the stream makes the daemon cancel the build.
            stream = self.client.api.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                tag=tag,
                network_mode="host",
                rm=True,
                forcerm=True,
                pull=False,
                buildargs=proxy_args(os.environ),
                labels={LABEL_SOURCE: tag.rsplit(":", 1)[1], LABEL_ASSIGNMENT: assignment},
                decode=True,
                timeout=bound,
            )
            for chunk in stream:
                if "stream" in chunk:
                    lines.append(str(chunk["stream"]))
                if "error" in chunk:
                    error = str(chunk["error"])
                    lines.append(error + "\n")
                if time.monotonic() - started > bound:
                    stream.close()
                    raise TimeoutError
        except (APIError, requests.RequestException, DockerException, urllib3.exceptions.HTTPError, OSError) as exc:
            if not _is_timeout(exc):
                raise ExecutorError(f"Docker failed while building {tag}: {exc}") from exc
            log = "".join(lines)[-MAX_LOG_CHARS:]
            raise ImageBuildError(f"setup.sh did not finish within {bound} s; the build was stopped", log=log) from None
        log = "".join(lines)[-MAX_LOG_CHARS:]
        if error is not None:
            raise ImageBuildError(f"setup.sh failed: {error.strip()}", log=log)
        return BuiltImage(tag, built=True, log=log, seconds=time.monotonic() - started)

    def _ca_bundle(self) -> bytes | None:
        path = self.settings.build_ca_bundle
        if path is None or not Path(path).is_file():
            return None
        return Path(path).read_bytes()

    def list_images(self) -> list[dict[str, Any]]:
        """Our images on this host: tag, assignment, size, creation time."""
        rows = []
        for image in self.client.images.list(filters={"label": LABEL_SOURCE}):
            rows.append(
                {
                    "tags": image.tags,
                    "id": image.short_id,
                    "assignment": image.labels.get(LABEL_ASSIGNMENT, ""),
                    "size_mb": round(int(image.attrs.get("Size", 0)) / 2**20, 1),
                    "created": image.attrs.get("Created", ""),
                }
            )
        return rows

    def prune(self, keep: set[str]) -> list[str]:
        """Remove our images whose tags are not in ``keep``; returns the removed tags."""
        removed: list[str] = []
        for image in self.client.images.list(filters={"label": LABEL_SOURCE}):
            if keep.intersection(image.tags):
                continue
            try:
                self.client.images.remove(image.id, force=True)
                removed.extend(image.tags or [image.short_id])
            except APIError:
                pass  # in use by a running job; a later prune gets it
        return removed


def _is_timeout(exc: BaseException) -> bool:
    """A read timeout, however docker-py, requests or urllib3 wrap it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError | urllib3.exceptions.ReadTimeoutError | requests.exceptions.ReadTimeout):
            return True
        if any(_is_timeout(a) for a in getattr(seen, "args", ()) if isinstance(a, BaseException)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def proxy_args(environ: Mapping[str, str]) -> dict[str, str]:
    """Proxy build args (Docker predefines them, so they never end up in the image)."""
    args = {}
    for name in PROXY_VARS:
        for variant in (name, name.lower()):
            if environ.get(variant):
                args[variant] = environ[variant]
    return args


def build_context(base: str, source: Mapping[str, bytes], ca_bundle: bytes | None) -> bytes:
    """The build context as an in-memory tar (Dockerfile, source/, the host CA bundle)."""
    if ca_bundle is not None:
        ca_copy = f"COPY host-ca.crt {CA_PATH}"
        apt = f"echo 'Acquire::https::CAInfo \"{CA_PATH}\";' > /etc/apt/apt.conf.d/99greengrader-ca &&"
        ca_env = apt + " export " + " ".join(f"{name}={CA_PATH}" for name in CA_ENV) + " &&"
    else:
        ca_copy, ca_env = "", ""
    dockerfile = DOCKERFILE.format(base=base, ca_copy=ca_copy, ca_env=ca_env)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "Dockerfile", dockerfile.encode(), 0o644)
        if ca_bundle is not None:
            _add(tar, "host-ca.crt", ca_bundle, 0o644)
        for name, data in sorted(source.items()):
            executable = name in ("run_autograder", "setup.sh") or name.endswith(".sh")
            _add(tar, f"source/{name}", data, 0o755 if executable else 0o644)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))
