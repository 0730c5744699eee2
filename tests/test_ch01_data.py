"""Chapter 1's data loading: the downloader (resume, checksum, atomic landing) and local copies.

No network: a tiny HTTP server on 127.0.0.1 serves bytes the test writes, and
understands `Range: bytes=N-`, which Python's SimpleHTTPRequestHandler does not.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import ch01_bigram.data as data_mod
from ch01_bigram import RemoteFile, download, find_or_download, load_text
from coursekit import CourseError

PAYLOAD = bytes(range(256)) * 400 + b"the end\n"  # 102,408 bytes, every byte value
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RangeHandler(BaseHTTPRequestHandler):
    """Serves `server.files[path]`, honouring `Range: bytes=N-` unless the path starts with /norange/."""

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "no such file")
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not self.path.startswith("/norange/"):
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        srv.bytes_sent += len(body)  # counted before sending, so the client never finishes first
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    srv.files = {"/file.txt": PAYLOAD, "/norange/file.txt": PAYLOAD}
    srv.requests, srv.bytes_sent = [], 0
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No shared data dir, a private cache, and no proxy between the test and 127.0.0.1."""
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the with-block ends: nothing listens there


def test_cache_dir_follows_xdg_cache_home(tmp_path):
    assert data_mod.cache_dir() == tmp_path / "xdg-cache" / "gpt-course"


# --------------------------------------------------------------------------- #
# download
# --------------------------------------------------------------------------- #

def test_complete_download_verifies_and_lands_atomically(server, tmp_path, monkeypatch):
    dest = tmp_path / "sub" / "file.txt"
    part = tmp_path / "sub" / "file.txt.part"
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):
        # At the moment of the rename the final name does not exist yet, and the .part file is whole.
        seen.append((Path(src), Path(dst), Path(dst).exists(), Path(src).read_bytes() == PAYLOAD))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    assert download(server.base + "/file.txt", dest, PAYLOAD_SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part.exists()
    assert seen == [(part, dest, False, True)]
    assert server.requests == [("/file.txt", None)]  # no .part file: no Range header


def test_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    dest = tmp_path / "file.txt"
    have = 40_000
    (tmp_path / "file.txt.part").write_bytes(PAYLOAD[:have])
    download(server.base + "/file.txt", dest, PAYLOAD_SHA, progress=False)
    assert server.requests == [("/file.txt", f"bytes={have}-")]
    assert server.bytes_sent == len(PAYLOAD) - have  # only the missing tail crossed the wire
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "file.txt.part").exists()


def test_part_file_that_is_already_whole_is_accepted(server, tmp_path):
    dest = tmp_path / "file.txt"
    (tmp_path / "file.txt.part").write_bytes(PAYLOAD)
    download(server.base + "/file.txt", dest, PAYLOAD_SHA, progress=False)  # the server answers 416
    assert server.requests == [("/file.txt", f"bytes={len(PAYLOAD)}-")]
    assert dest.read_bytes() == PAYLOAD


def test_server_that_ignores_range_makes_the_download_start_over(server, tmp_path):
    dest = tmp_path / "file.txt"
    (tmp_path / "file.txt.part").write_bytes(PAYLOAD[:1000])
    download(server.base + "/norange/file.txt", dest, PAYLOAD_SHA, progress=False)
    assert server.requests == [("/norange/file.txt", "bytes=1000-")]
    assert server.bytes_sent == len(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD  # not the first 1000 bytes twice


def test_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    dest = tmp_path / "file.txt"
    wrong = "0" * 64
    with pytest.raises(CourseError, match=f"sha256 is {PAYLOAD_SHA}, expected {wrong}"):
        download(server.base + "/file.txt", dest, wrong, progress=False)
    assert not dest.exists()
    assert not (tmp_path / "file.txt.part").exists()  # a bad download is not resumed next time


def test_corrupt_part_file_is_caught_by_the_checksum(server, tmp_path):
    dest = tmp_path / "file.txt"
    (tmp_path / "file.txt.part").write_bytes(b"x" * 5000)  # not the start of the file
    with pytest.raises(CourseError, match="sha256"):
        download(server.base + "/file.txt", dest, PAYLOAD_SHA, progress=False)
    assert not dest.exists() and not (tmp_path / "file.txt.part").exists()
    download(server.base + "/file.txt", dest, PAYLOAD_SHA, progress=False)  # the retry starts clean
    assert dest.read_bytes() == PAYLOAD


def test_unreachable_url_says_offline_and_names_the_way_out(tmp_path):
    dest = tmp_path / "file.txt"
    with pytest.raises(CourseError) as info:
        download(f"http://127.0.0.1:{closed_port()}/file.txt", dest, PAYLOAD_SHA, timeout=5, progress=False)
    message = str(info.value)
    assert "offline" in message and "--data-dir" in message and "COURSE_DATA_DIR" in message
    assert "file.txt" in message and "\n" not in message
    assert not dest.exists()


def test_http_error_is_a_course_error(server, tmp_path):
    with pytest.raises(CourseError, match="HTTP 404"):
        download(server.base + "/missing.txt", tmp_path / "missing.txt", PAYLOAD_SHA, progress=False)
    assert not (tmp_path / "missing.txt").exists()


# --------------------------------------------------------------------------- #
# find_or_download: local copies first, then the cache, then the network
# --------------------------------------------------------------------------- #

@pytest.fixture
def remote(server) -> RemoteFile:
    return RemoteFile(url=server.base + "/file.txt", sha256=PAYLOAD_SHA, filename="tiny.txt",
                      aliases=("input.txt",))


@pytest.mark.parametrize("name", ["tiny.txt", "input.txt"])
def test_data_dir_copy_is_used_without_network(server, remote, tmp_path, name):
    d = tmp_path / "data"
    d.mkdir()
    (d / name).write_bytes(PAYLOAD)
    assert find_or_download(remote, data_dir=d, progress=False) == d / name
    assert server.requests == []


def test_environment_variable_finds_a_copy(server, remote, tmp_path, monkeypatch):
    d = tmp_path / "env-data"
    d.mkdir()
    (d / "input.txt").write_bytes(PAYLOAD)
    monkeypatch.setenv("COURSE_DATA_DIR", str(d))
    assert find_or_download(remote, progress=False) == d / "input.txt"
    assert server.requests == []


def test_wrong_copy_is_refused_by_sha256(server, remote, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "tiny.txt").write_bytes(PAYLOAD[:-1])
    with pytest.raises(CourseError, match=r"tiny\.txt has sha256 [0-9a-f]{64}, expected " + PAYLOAD_SHA):
        find_or_download(remote, data_dir=d, progress=False)
    assert server.requests == []


def test_data_dir_without_the_file_is_an_error(server, remote, tmp_path):
    with pytest.raises(CourseError, match="tiny.txt not found in --data-dir"):
        find_or_download(remote, data_dir=tmp_path, progress=False)
    assert server.requests == []  # the user named a directory: do not quietly go online instead


def test_download_into_the_cache_then_reuse_it(server, remote, tmp_path):
    cached = tmp_path / "xdg-cache" / "gpt-course" / "tiny.txt"
    assert find_or_download(remote, progress=False) == cached
    assert cached.read_bytes() == PAYLOAD and len(server.requests) == 1
    assert find_or_download(remote, progress=False) == cached
    assert len(server.requests) == 1  # second time from the cache


def test_corrupt_cached_copy_is_downloaded_again(server, remote, tmp_path):
    cached = tmp_path / "xdg-cache" / "gpt-course" / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage")
    assert find_or_download(remote, progress=False) == cached
    assert cached.read_bytes() == PAYLOAD and len(server.requests) == 1


def test_find_local_never_goes_online(server, remote, tmp_path):
    from ch01_bigram.data import find_local

    assert find_local(remote) is None                      # nothing local: a miss, not a download
    cached = tmp_path / "xdg-cache" / "gpt-course" / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    assert find_local(remote) == cached
    assert server.requests == []


def test_offline_without_any_copy(tmp_path):
    remote = RemoteFile(url=f"http://127.0.0.1:{closed_port()}/x.txt", sha256=PAYLOAD_SHA, filename="x.txt")
    with pytest.raises(CourseError, match="offline.*--data-dir DIR or set COURSE_DATA_DIR=DIR"):
        find_or_download(remote, progress=False)


# --------------------------------------------------------------------------- #
# load_text and the Tiny Shakespeare record
# --------------------------------------------------------------------------- #

def test_load_text_reads_a_path(tmp_path):
    (tmp_path / "t.txt").write_text("héllo\n", encoding="utf-8")
    assert load_text(str(tmp_path / "t.txt")) == "héllo\n"


def test_load_text_finds_tinyshakespeare_in_a_data_dir(shakespeare_dir):
    text = load_text("tinyshakespeare", data_dir=shakespeare_dir, progress=False)
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    assert len(text) == 1_115_394 and len(set(text)) == 65


def test_tinyshakespeare_record_matches_the_reference_copy(shakespeare_dir):
    assert data_mod.sha256_of(shakespeare_dir / "tinyshakespeare.txt") == data_mod.TINYSHAKESPEARE.sha256
    assert data_mod.TINYSHAKESPEARE.filename == "tinyshakespeare.txt"
    assert "input.txt" in data_mod.TINYSHAKESPEARE.aliases


def test_a_byte_order_mark_is_not_a_character(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffhello".encode("utf-8"))
    assert load_text(str(path)) == "hello"


def test_atomic_files_get_the_users_umask_not_mkstemps_private_mode(tmp_path):
    import os
    import stat

    from coursekit.files import write_bytes_atomically
    old = os.umask(0o022)
    try:
        write_bytes_atomically(tmp_path / "a.json", b"{}")
        (tmp_path / "b.txt").write_bytes(b"")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE((tmp_path / "b.txt").stat().st_mode)
