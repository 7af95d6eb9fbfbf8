"""Progress displays: a tqdm bar on a terminal, a few plain lines (no carriage returns) in logs."""

from __future__ import annotations

import io
import logging

import pytest

from fds.progress import Progress, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("FDS_PROGRESS", raising=False)


def _no_root_handlers(monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])


def test_lines_when_not_a_terminal(monkeypatch):
    _no_root_handlers(monkeypatch)
    out = io.StringIO()
    items = list(progress(range(5), "photos", unit="photo", every_s=0.0, stream=out))
    assert items == list(range(5))
    text = out.getvalue()
    assert "\r" not in text  # nothing that redraws a line: logs stay readable
    lines = text.splitlines()
    assert lines[0] == "photos: started, 5 photos"
    assert lines[1].startswith("photos: 1/5 (20%)") and "ETA" in lines[1]
    assert lines[-1].startswith("photos: 5/5 (100%)") and lines[-1].endswith("done")
    assert len(lines) == 1 + 4 + 1  # start, items 1-4 (the 5th is the final line), done


def test_lines_are_throttled(monkeypatch):
    _no_root_handlers(monkeypatch)
    out = io.StringIO()
    for _ in progress(range(1000), "scans", every_s=3600.0, stream=out):
        pass
    assert len(out.getvalue().splitlines()) == 2  # start and done only, however many items


def test_bar_on_a_terminal(monkeypatch):
    out = _Tty()
    with Progress(3, "eval", stream=out) as p:
        for _ in range(3):
            p.update()
    assert "\r" in out.getvalue() and "3/3" in out.getvalue()  # tqdm redraws in place on a terminal


def test_env_overrides_and_logging(monkeypatch, caplog):
    monkeypatch.setenv("FDS_PROGRESS", "off")
    out = _Tty()
    assert list(progress([1, 2], "x", stream=out)) == [1, 2] and out.getvalue() == ""
    monkeypatch.setenv("FDS_PROGRESS", "lines")
    with caplog.at_level(logging.INFO, logger="fds.progress"):
        list(progress([1, 2], "wild photos", stream=out, every_s=0.0))
    assert out.getvalue() == ""  # logging is configured (caplog): lines go to the log, not the stream
    assert any(r.getMessage().startswith("wild photos: 2/2") for r in caplog.records)
