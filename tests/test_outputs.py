"""Output folders: safe names, one run per output= (lock), whole photo folders or none."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fds.outputs import OutputError, OutputFolder, OutputLockedError, safe_name, unique_names


@pytest.mark.parametrize("stem, name", [
    ("..", "photo"), (".", "photo"), ("", "photo"), ("...", "photo"), (". .", "photo"),
    ("a/b", "a_b"), ("a\\b", "a_b"), ("x\x00y", "x_y"), ("line\nbreak\r", "line_break_"), ("\u202eevil", "_evil"),
    (".hidden", "hidden"), ("trailing. ", "trailing"), ("CON", "CON_"), ("lpt1.x", "lpt1.x_"),
    ("émile", "émile"), ("a:b*c?d", "a_b_c_d"),
])
def test_safe_name_examples(stem, name):
    assert safe_name(stem) == name


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_safe_name_is_one_plain_name_inside_the_output(stem):
    name = safe_name(stem)
    assert name and name not in (".", "..") and not name.startswith(".") and name == name.strip(" .")
    assert not set(name) & set('/\\\0:*?"<>|')
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name)
    assert len(name.encode("utf-8")) <= 96
    assert safe_name(name) == name
    root = Path("/out")
    assert (root / name).parent == root


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=12))
def test_unique_names_never_collide(stems):
    paths = [Path(f"/p{i}") / f"{s.replace('/', '_')}.jpg" for i, s in enumerate(stems)]
    names = list(unique_names(paths).values())
    keys = [n.casefold() for n in names]
    assert len(set(keys)) == len(paths)
    # no name equals another photo's extra-face folder
    assert not {f"{k}_face{i}" for k in keys for i in range(1, 9)} & set(keys)


def test_second_run_into_the_same_folder_stops_at_once(tmp_path):
    with OutputFolder(tmp_path / "out") as first:
        assert first.is_open
        with pytest.raises(OutputLockedError, match=rf"output={tmp_path / 'out'} is in use by another fds run "
                                                    rf"\(pid {os.getpid()}"):
            OutputFolder(tmp_path / "out").open()
    with OutputFolder(tmp_path / "out"):  # released at close
        pass


def test_a_killed_run_does_not_keep_the_folder_locked(tmp_path):
    code = ("import sys, time; from fds.outputs import OutputFolder; OutputFolder(sys.argv[1]).open(); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out")], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"pid {proc.pid}"):
            OutputFolder(tmp_path / "out").open()
    finally:
        proc.kill()
        proc.wait()
    with OutputFolder(tmp_path / "out"):
        pass


def test_unusable_outputs_are_named(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"output=.*file is a file, not a folder"):
        OutputFolder(tmp_path / "file").open()
    with pytest.raises(OutputError, match=r"output=/proc/fds-nowhere/out cannot be created or written"):
        OutputFolder("/proc/fds-nowhere/out").open()
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr("fds.outputs.os.open", read_only)
    with pytest.raises(OutputError, match="Read-only file system"):
        OutputFolder(tmp_path / "ro").open()


def test_photo_folders_appear_whole_or_not_at_all(tmp_path):
    with OutputFolder(tmp_path / "out") as out:
        with pytest.raises(OSError, match=rf"No space left on device.*{tmp_path / 'out' / 'a_face1' / 'big.bin'}"):
            with out.photo(["a", "a_face1"], "sha-a") as (face0, face1):
                (face0 / "result.json").write_text(json.dumps({"image_sha1": "sha-a"}))
                raise OSError(errno.ENOSPC, "No space left on device", str(face1 / "big.bin"))
        assert sorted(os.listdir(out.root)) == [".fds-run.lock"]  # no partial folder, no temporary left
        with out.photo(["a", "a_face1"], "sha-a") as tmps:
            assert all(t.parent == out.root and t.name.startswith(".a") for t in tmps)
            for t in tmps:
                (t / "result.json").write_text(json.dumps({"image_sha1": "sha-a"}))
        assert out.owner("a") == out.owner("a_face1") == "sha-a"
        # a rerun of the same photo replaces its folders and drops the extra face it no longer finds
        with out.photo(["a"], "sha-a") as (t,):
            (t / "result.json").write_text(json.dumps({"image_sha1": "sha-a", "rerun": True}))
        assert json.loads((out.root / "a" / "result.json").read_text())["rerun"]
        assert not (out.root / "a_face1").exists()
        # another photo named "a" never replaces it; names of the run's other photos are not taken either
        assert out.claim("a", "sha-a", {"a"}) == "a"
        assert out.claim("a", "sha-b", {"a", "a_2"}) == "a_3"
        (out.root / "mine").mkdir()  # a folder that is not a photo's outputs
        assert out.claim("mine", "sha-c", set()) == "mine_2"
        with pytest.raises(ValueError, match="not a safe output name"):
            out.child("../escape")


def test_leftovers_of_a_killed_run_are_cleared(tmp_path):
    out = tmp_path / "out"
    (out / ".a.x1y2.part").mkdir(parents=True)
    (out / ".a.x1y2.part" / "texture.png").write_bytes(b"half")
    (out / ".summary.json.abc.part").write_bytes(b"{")
    (out / "a").mkdir()
    with OutputFolder(out):
        assert sorted(os.listdir(out)) == [".fds-run.lock", "a"]


def test_summary_describes_the_folder_across_runs(tmp_path, caplog):
    """A later run keeps the earlier runs' records of photos it did not redo, replaces those it redid (by input
    path, or by an output folder it rewrote), names the run of each record; a corrupt summary.json is replaced."""
    root = tmp_path / "out"

    def ok(image: str, *names: str) -> dict:
        return {"image": image, "outputs": [str(root / n) for n in names], "warnings": []}

    def run(new: dict) -> tuple[str, dict]:
        with OutputFolder(root) as out:
            for r in new.get("succeeded", []):
                for o in r["outputs"]:
                    (root / Path(o).name).mkdir(exist_ok=True)
            out.write_summary({"checkpoint": new.get("checkpoint", "a.safetensors"), **new})
            return out.run_id, json.loads((root / "summary.json").read_text())

    def by_input(s: dict) -> dict[str, tuple[str, str] | set[tuple[str, str]]]:
        records: dict[str, set[tuple[str, str]]] = {}
        for k in ("succeeded", "failed", "skipped"):
            for r in s[k]:
                records.setdefault(r.get("image", r.get("path")), set()).add((k, r["run"]))
        return {i: next(iter(v)) if len(v) == 1 else v for i, v in records.items()}

    first, s1 = run({"succeeded": [ok("/p/a.jpg", "a"), ok("/p/b.jpg", "b", "b_face1")],
                     "failed": [{"image": "/p/c.jpg", "reason": "no face detected"}],
                     "skipped": [{"path": "/p/notes.txt", "reason": "not an image"}]})
    assert by_input(s1) == {"/p/a.jpg": ("succeeded", first), "/p/b.jpg": ("succeeded", first),
                            "/p/c.jpg": ("failed", first), "/p/notes.txt": ("skipped", first)}
    assert list(s1["runs"]) == [first] and s1["runs"][first]["checkpoint"] == "a.safetensors"

    # run 2: c now works, a fails (its folder from run 1 stays, and so does the record saying so); d is new;
    # b's second face folder is rewritten by b_copy (same content elsewhere)
    second, s2 = run({"checkpoint": "b.safetensors",
                      "succeeded": [ok("/p/c.jpg", "c"), ok("/q/d.jpg", "d"), ok("/q/b_copy.jpg", "b_face1")],
                      "failed": [{"image": "/p/a.jpg", "reason": "cannot decode image"}]})
    assert second > first
    assert by_input(s2) == {"/p/notes.txt": ("skipped", first), "/p/c.jpg": ("succeeded", second),
                            "/q/d.jpg": ("succeeded", second), "/q/b_copy.jpg": ("succeeded", second),
                            "/p/a.jpg": {("succeeded", first), ("failed", second)}}
    assert s2["checkpoint"] == "b.safetensors" and list(s2["runs"]) == [first, second]
    assert s2["runs"][first] == s1["runs"][first]

    # run 3 only skips an entry; records whose folders are gone are dropped, a run nothing refers to is forgotten
    for name in ("a", "c", "b_face1"):
        (root / name).rmdir()
    third, s3 = run({"skipped": [{"path": "/p/notes.txt", "reason": "not an image"}]})
    assert by_input(s3) == {"/p/notes.txt": ("skipped", third), "/q/d.jpg": ("succeeded", second),
                            "/p/a.jpg": ("failed", second)}
    assert list(s3["runs"]) == [second, third]

    # a corrupt or foreign summary.json is logged and replaced; an old one without run ids is kept as run None
    for bad in (b"{\"succeeded\": [", b"\xff\xfe", b"[1, 2]", b'{"failed": [{"reason": "no image key"}]}'):
        (root / "summary.json").write_bytes(bad)
        caplog.clear()
        fourth, s4 = run({"failed": [{"image": "/p/e.jpg", "reason": "no face detected"}]})
        assert by_input(s4) == {"/p/e.jpg": ("failed", fourth)} and list(s4["runs"]) == [fourth]
        assert "summary.json is unreadable or corrupt" in caplog.text
    (root / "summary.json").write_text(json.dumps({"checkpoint": "old", "succeeded": [ok("/p/d.jpg", "d")],
                                                   "failed": [], "skipped": []}))
    fifth, s5 = run({"failed": [{"image": "/p/e.jpg", "reason": "no face detected"}]})
    assert by_input(s5) == {"/p/d.jpg": ("succeeded", None), "/p/e.jpg": ("failed", fifth)}
    assert not [p for p in os.listdir(root) if p.endswith(".part")]
