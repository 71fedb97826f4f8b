"""The paper's data, fetched on request: checksums, atomic writes, clear errors offline, the
extractor of derived inputs. Served by a local HTTP server on 127.0.0.1 (no network)."""

import functools
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
from conftest import ANCHOR

from utility_jax.io import datasets as DS

FIXTURE = Path(__file__).parent / "data" / "fetch_fixture"
SMALL = "utility_analysis/outcomes_small.json"
EXCHANGE = "utility_analysis/experiments/exchange_rates/evaluate_exchange_rates.py"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FIXTURE))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{{tag}}/{{path}}"
    httpd.shutdown()
    httpd.server_close()


def _files(**override):
    files = {
        SMALL: ("UP", SMALL, _sha(FIXTURE / "UP" / SMALL)),
        EXCHANGE: ("UP", EXCHANGE, _sha(FIXTURE / "UP" / EXCHANGE)),
    }
    files.update(override)
    return files


def test_fetch_writes_checked_files_then_keeps_them(server, tmp_path):
    r = DS.fetch(tmp_path, base_url=server, files=_files())
    assert sorted(r.written) == sorted([SMALL, EXCHANGE]) and not r.present
    assert (tmp_path / SMALL).read_bytes() == (FIXTURE / "UP" / SMALL).read_bytes()
    assert r.n_bytes == sum((FIXTURE / "UP" / p).stat().st_size for p in (SMALL, EXCHANGE))
    # the extractor read the literals of the (never executed) source file
    space = json.loads((tmp_path / "derived" / "exchange_rate_option_space.json").read_text())
    assert space["X_values"] == {"pets": ["cats", "dogs"]} and space["N_values"]["count"][-1] == 100
    assert space["dollar_options"]["count"] == 92
    grid = json.loads((tmp_path / "derived" / "time_discounting_grid.json").read_text())
    assert len(grid["time_delays_months"]) == 60 and 59 not in grid["time_delays_months"]
    assert len(grid["delayed_amounts"]) == 30 and grid["delayed_amounts"][0] == 500
    r2 = DS.fetch(tmp_path, base_url=server, files=_files())
    assert sorted(r2.present) == sorted([SMALL, EXCHANGE]) and not r2.written


def test_a_corrupted_file_is_refused_by_its_checksum(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ValueError, match=r"outcomes_small.json: sha256 mismatch .* not written"):
        DS.fetch(tmp_path, base_url=server, files=_files(**{SMALL: ("UP", SMALL, wrong)}))
    assert not (tmp_path / SMALL).exists()
    assert not list(tmp_path.rglob("*.tmp*")) and not list(tmp_path.rglob("tmp*"))
    # a file changed on disk is fetched again
    DS.fetch(tmp_path, base_url=server, files=_files())
    (tmp_path / SMALL).write_text("{}")
    assert SMALL in DS.fetch(tmp_path, base_url=server, files=_files()).written


def test_offline_and_missing_files_are_clear_errors(server, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(
        ConnectionError, match=r"cannot reach http://127.0.0.1:\d+/UP/.*UTILITY_JAX_DATA"
    ):
        DS.fetch(tmp_path, base_url=f"http://127.0.0.1:{closed}/{{tag}}/{{path}}", files=_files())
    with pytest.raises(RuntimeError, match="HTTP 404"):
        DS.fetch(tmp_path, base_url=server, files=_files(**{"x": ("UP", "nope.json", "0" * 64)}))


def test_data_command_reports_and_fails_cleanly(server, tmp_path, capsys):
    from utility_jax.cli import main

    assert main(["data", "where", "--dest", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert main(["data", "check", "--dest", str(tmp_path)]) == 1
    assert f"0 of {len(DS.FILES)} files verified" in capsys.readouterr().out
    # the real file list against the fixture server: the first file is missing there
    assert main(["data", "fetch", "--dest", str(tmp_path), "--base-url", server]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_extract_literals_never_runs_code_and_names_the_file():
    src = "X = {'a': [1, 2]}\nY = open('/etc/passwd').read()\n"
    assert DS.extract_literals(src, ["X"], origin="f.py") == {"X": {"a": [1, 2]}}
    with pytest.raises(ValueError, match="f.py: Y is not a literal"):
        DS.extract_literals(src, ["Y"], origin="f.py")
    with pytest.raises(ValueError, match=r"f.py: no top-level assignment of \['Z'\]"):
        DS.extract_literals(src, ["Z"], origin="f.py")


def test_the_checksum_table_matches_the_paper_data_where_present():
    """Every pinned file that the developers' copy of the paper data holds has the sha256 the
    table expects (the copy is byte for byte the reference's)."""
    checked = 0
    for rel, (_, _, sha) in DS.FILES.items():
        p = ANCHOR / rel
        if p.exists():
            assert _sha(p) == sha, rel
            checked += 1
    assert checked >= 11


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UTILITY_JAX_DATA", str(tmp_path))
    assert DS.data_dir() == tmp_path
    with pytest.raises(DS.PaperDataMissing, match="utility-jax data fetch"):
        DS.data_file("utility_analysis/nope.json")
    monkeypatch.delenv("UTILITY_JAX_DATA")
    monkeypatch.delenv("UTILITY_JAX_ANCHOR_DATA", raising=False)
    assert DS.data_dir().name.startswith("emergent-values-313ec33")


@pytest.fixture
def trickle():
    """A server that sends one byte every 0.2 s, and declares (or streams) bodies too large."""
    import time

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            if "big-declared" in self.path:
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                return
            self.end_headers()
            try:
                for _ in range(10**6):
                    self.wfile.write(b"x" * (2**16 if "big-streamed" in self.path else 1))
                    self.wfile.flush()
                    if "slow" in self.path:
                        time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{{path}}"
    httpd.shutdown()
    httpd.server_close()


def test_a_trickling_or_oversized_download_is_cut_off_and_leaves_nothing(trickle, tmp_path):
    """Before: --timeout bounded each read only (a server trickling a byte every 2 s held the
    fetch forever) and a 400 MB body was read into memory before any check."""
    import time

    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=r"not finished after 1 s"):
        DS.fetch(
            tmp_path, base_url=trickle, files={"a.json": ("UP", "slow", "0" * 64)}, deadline_s=1
        )
    assert time.monotonic() - t0 < 10
    for path in ("big-declared", "big-streamed"):
        with pytest.raises(ValueError, match=r"bytes"):
            DS.fetch(
                tmp_path,
                base_url=trickle,
                files={"a.json": ("UP", path, "0" * 64)},
                max_bytes=2**20,
            )
    assert not list(tmp_path.rglob("*a.json*"))


def test_fetched_files_are_world_readable_and_names_stay_inside_the_folder(server, tmp_path):
    DS.fetch(tmp_path, base_url=server, files=_files())
    assert (tmp_path / SMALL).stat().st_mode & 0o777 == 0o644
    for bad in ("../escape.json", "/tmp/abs.json"):
        with pytest.raises(ValueError, match="not a path inside the data folder"):
            DS.fetch(tmp_path / "d", base_url=server, files={bad: ("UP", SMALL, "0" * 64)})
    assert not (tmp_path / "escape.json").exists()
