import hashlib
import http.server
import threading
from functools import partial

import pytest

from fds import assets
from fds.assets import Asset, AssetError, resolve_asset


def test_shared_assets_resolve_and_verify(shared_data):
    path = resolve_asset("sfm_shape", verify=True)
    assert path == shared_data / "assets" / "sfm" / "sfm_shape_3448.bin"


def test_env_dir_takes_precedence(tmp_path, monkeypatch, shared_data):
    (tmp_path / "sfm").mkdir()
    own = tmp_path / "sfm" / "ibug_to_sfm.txt"
    own.write_text((shared_data / "assets" / "sfm" / "ibug_to_sfm.txt").read_text())
    monkeypatch.setenv("FDS_ASSETS_DIR", str(tmp_path))
    assert resolve_asset("sfm_landmarks") == own


def test_corrupt_asset_is_named(tmp_path, monkeypatch):
    (tmp_path / "sfm").mkdir()
    (tmp_path / "sfm" / "sfm_shape_3448.bin").write_bytes(b"not a model")
    with pytest.raises(AssetError, match="sfm_shape.*corrupt"):
        resolve_asset("sfm_shape", assets_dir=tmp_path, verify=True)


def test_missing_offline_asset_says_what_to_get(tmp_path, monkeypatch):
    monkeypatch.setenv("FDS_OFFLINE", "1")
    monkeypatch.setenv("FDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "shared_assets_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(AssetError) as err:
        resolve_asset("sfm_shape")
    msg = str(err.value)
    assert "sfm_shape" in msg and "raw.githubusercontent.com/patrikhuber/eos" in msg
    assert str(tmp_path / "cache" / "assets" / "sfm" / "sfm_shape_3448.bin") in msg
    with pytest.raises(AssetError, match="faces.dmi.unibas.ch"):
        resolve_asset("bfm2017_nomouth")


@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_verifies_and_writes_atomically(tmp_path, monkeypatch, local_server):
    root, url = local_server
    payload = b"fds asset payload\n" * 1000
    (root / "thing.bin").write_bytes(payload)
    monkeypatch.setenv("FDS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FDS_OFFLINE", raising=False)
    good = Asset("test_thing", "x/thing.bin", url + "thing.bin", hashlib.sha256(payload).hexdigest(), "test")
    bad = Asset("test_bad", "x/bad.bin", url + "thing.bin", "0" * 64, "test")
    monkeypatch.setitem(assets.REGISTRY, good.name, good)
    monkeypatch.setitem(assets.REGISTRY, bad.name, bad)
    path = resolve_asset("test_thing")
    assert path.read_bytes() == payload
    assert path.parent == tmp_path / "cache" / "assets" / "x"
    with pytest.raises(AssetError, match="sha256"):
        resolve_asset("test_bad")
    assert sorted(p.name for p in path.parent.iterdir()) == ["thing.bin"]  # no partial or bad file left
    assert path.stat().st_mode & 0o044  # readable by others like any normal file (not mkstemp's 0600)


def test_unknown_asset_lists_registry():
    with pytest.raises(KeyError, match="sfm_shape"):
        resolve_asset("no_such_asset")
