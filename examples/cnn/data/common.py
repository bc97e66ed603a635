"""Helpers shared by the dataset loaders and download scripts.

The data directory of a dataset is, in order of preference: the ``data_dir`` argument (the
``--data-dir`` option of the scripts), the environment variable ``MINISINGA_DATA``, and the
cache directory ``~/.cache/minisinga/data/<name>``. MNIST files sit directly in that
directory; the CIFAR loaders look for their archive's folder (``cifar-10-batches-py``,
``cifar-100-python``) inside it, so a single ``MINISINGA_DATA`` can hold all three sets.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shlex
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

ENV_VAR = "MINISINGA_DATA"
CHUNK_SIZE = 1 << 20
URL_TIMEOUT_S = 60


class DatasetError(Exception):
    """A dataset file is missing, corrupt or could not be downloaded."""


def resolve_data_dir(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the data directory: ``data_dir``, else ``$MINISINGA_DATA``, else the cache."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env).expanduser()
    return Path.home() / ".cache" / "minisinga" / "data" / name


@dataclass(frozen=True)
class DataSource:
    """A dataset's display name, cache name, download script and extra advice for errors."""

    title: str
    name: str
    script: str
    advice: str = ""

    def download_command(self, data_dir: Path) -> str:
        """Return the shell command that downloads this dataset into ``data_dir``."""
        script = Path(__file__).resolve().with_name(self.script)
        try:
            shown = script.relative_to(Path.cwd())
        except ValueError:
            shown = script
        return f"python {shlex.quote(str(shown))} --data-dir {shlex.quote(str(data_dir))}"

    def error(self, path: Path, data_dir: Path, problem: str) -> DatasetError:
        """Build the error for file ``path`` of the data directory ``data_dir``."""
        path, data_dir = path.absolute(), data_dir.absolute()
        lines = [
            f"{self.title} file '{path.name}' {problem}.",
            f"Looked for it in {path.parent} (data directory: the data_dir argument or "
            f"--data-dir, else ${ENV_VAR}, else ~/.cache/minisinga/data/{self.name}).",
            "Download the dataset with:",
            f"    {self.download_command(data_dir)}",
        ]
        if self.advice:
            lines.append(self.advice)
        return DatasetError("\n".join(lines))


def file_digest(path: Path, algorithm: str) -> str:
    """Return the hex digest of the file at ``path`` with ``algorithm`` (e.g. md5, sha256)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(
    path: Path, md5: str | None = None, sha256: str | None = None, label: str | None = None
) -> None:
    """Raise ``DatasetError`` unless ``path`` matches every checksum given; the message calls
    the file ``label`` (default: its name)."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.lower():
            raise DatasetError(
                f"{label or path.name}: {algorithm.upper()} checksum mismatch "
                f"(expected {expected.lower()}, got {actual})"
            )


class _Progress(Protocol):
    def update(self, count: int) -> object: ...

    def close(self) -> None: ...


class _TextProgress:
    """A one-line text progress bar for an interactive terminal."""

    WIDTH = 30

    def __init__(self, label: str, total: int | None, stream: IO[str]) -> None:
        self.label, self.total, self.stream, self.done = label, total, stream, 0

    def update(self, count: int) -> None:
        self.done += count
        mb = self.done / 1e6
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * self.WIDTH)
            total_mb = self.total / 1e6
            line = f"{self.label} {frac:4.0%} [{bar:<{self.WIDTH}}] {mb:.1f}/{total_mb:.1f} MB"
        else:
            line = f"{self.label} {mb:.1f} MB"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class _NoProgress:
    """Progress reporting that shows nothing (output is not a terminal)."""

    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(label: str, total: int | None) -> _Progress:
    try:
        from tqdm import tqdm
    except ImportError:
        if sys.stderr.isatty():
            return _TextProgress(label, total, sys.stderr)
        return _NoProgress()
    # disable=None: tqdm shows itself only when stderr is a terminal, like the text bar
    return tqdm(
        total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, disable=None
    )


def _download_once(url: str, dest: Path, md5: str | None, sha256: str | None) -> None:
    """Download ``url`` to a temporary file next to ``dest``, verify it, then rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            bar = _progress(dest.name, int(length) if length else None)
            try:
                for block in iter(lambda: resp.read(CHUNK_SIZE), b""):
                    out.write(block)
                    bar.update(len(block))
            finally:
                bar.close()
        verify_checksum(tmp, md5=md5, sha256=sha256, label=f"{dest.name} from {url}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(
    urls: Sequence[str], dest: Path, md5: str | None = None, sha256: str | None = None
) -> Path:
    """Download ``dest`` from the first of ``urls`` that works and passes the checksums.

    A file already at ``dest`` with matching checksums is kept. The download goes to a
    temporary file in the same directory that replaces ``dest`` atomically only once it is
    complete and verified, so an interrupted or bad download never leaves a partial file.
    """
    dest = Path(dest)
    if dest.is_file():
        try:
            verify_checksum(dest, md5=md5, sha256=sha256)
        except DatasetError:
            print(f"{dest} fails its checksum; downloading it again", file=sys.stderr)
        else:
            print(f"{dest} is already present and verified", file=sys.stderr)
            return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the directory {dest.parent}: {exc}") from None
    failures: list[str] = []
    for url in urls:
        print(f"downloading {url} -> {dest}", file=sys.stderr)
        try:
            _download_once(url, dest, md5, sha256)
        except DatasetError as exc:
            failures.append(str(exc))
        except urllib.error.HTTPError as exc:
            failures.append(f"{url}: {exc}")
        except urllib.error.URLError as exc:
            failures.append(f"{url}: {exc.reason}")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {exc}")
        else:
            return dest
    tried = "\n".join(f"  {failure}" for failure in failures)
    raise DatasetError(
        f"could not download {dest.name}. Tried:\n{tried}\n"
        f"If this machine cannot reach them, fetch the file elsewhere, copy it to {dest} and "
        "run the command again: it is verified and used without downloading."
    )


def _checked_members(
    tar: tarfile.TarFile, archive: Path
) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Return the archive's members with their relative paths; reject anything unsafe."""
    members = []
    for member in tar.getmembers():
        rel = PurePosixPath(member.name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DatasetError(f"{archive.name}: unsafe path in archive: {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise DatasetError(
                f"{archive.name}: refusing to extract {member.name!r} "
                "(only regular files and directories are allowed)"
            )
        if rel.parts:
            members.append((member, rel))
    return members


def extract_tar_gz(archive: Path, dest_dir: Path) -> list[Path]:
    """Safely extract the tar.gz ``archive`` into ``dest_dir`` and return its top-level entries.

    Absolute paths, ``..`` components, links and special files are refused. The archive is
    unpacked into a staging directory first; each top-level entry then replaces any entry of
    the same name in ``dest_dir``.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    except OSError as exc:
        raise DatasetError(f"cannot extract {archive.name} into {dest_dir}: {exc}") from None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member, rel in _checked_members(tar, archive):
                target = staging.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has data
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK_SIZE)
        extracted = []
        for entry in sorted(staging.iterdir()):
            final = dest_dir / entry.name
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            else:
                final.unlink(missing_ok=True)
            os.replace(entry, final)
            extracted.append(final)
        return extracted
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError(f"cannot extract {archive} into {dest_dir}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download_archive(
    data_dir: Path, archive: str, urls: Sequence[str], md5: str, expected: Sequence[str]
) -> Path:
    """Fetch the tar.gz ``archive`` into ``data_dir``, verify it, extract it there and check
    that every path in ``expected`` (relative to ``data_dir``) was extracted. Returns
    ``data_dir``; the verified archive is kept so that running again does not download it."""
    path = fetch(urls, data_dir / archive, md5=md5)
    extract_tar_gz(path, data_dir)
    missing = [name for name in expected if not (data_dir / name).is_file()]
    if missing:
        raise DatasetError(f"{path} did not contain {', '.join(missing)}")
    return data_dir


def download_cli(
    source: DataSource,
    download: Callable[[str | None, Sequence[str]], Path],
    default_urls: Sequence[str],
    url_help: str,
) -> int:
    """Run a download script: parse ``--data-dir``/``--url``, call ``download(data_dir, urls)``
    and return the exit status: 1, with the error message and no traceback, on failure."""
    parser = argparse.ArgumentParser(
        description=f"Download {source.title} into the data directory and verify its checksums."
    )
    parser.add_argument(
        "--data-dir",
        help=f"target directory (default: ${ENV_VAR}, else ~/.cache/minisinga/data/{source.name})",
    )
    parser.add_argument(
        "--url",
        action="append",
        help=f"{url_help}; repeat it to give fallbacks (default: {' '.join(default_urls)})",
    )
    args = parser.parse_args()
    try:
        root = download(args.data_dir, args.url or default_urls)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{source.title} is ready in {root} (pass --data-dir {shlex.quote(str(root))} to train)")
    return 0
