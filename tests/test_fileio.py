"""voicegender.fileio.atomic_write: the old file survives any failure; devices and pipes are written into."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from voicegender.errors import OutputError
from voicegender.fileio import atomic_write


def test_a_full_disk_is_one_error_naming_the_file_and_the_old_file_stays(tmp_path):
    out = tmp_path / "timeline.csv"
    out.write_text("the previous answers\n")

    def full(f):
        f.write(b"half of the new")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match=r"timeline.csv: cannot write \(No space left on device\); the file there"):
        atomic_write(out, full)
    assert out.read_text() == "the previous answers\n"
    assert [p.name for p in tmp_path.iterdir()] == ["timeline.csv"]  # no temporary file left


def test_other_errors_of_the_writer_pass_through(tmp_path):
    def broken(f):
        raise ValueError("not a disk problem")

    with pytest.raises(ValueError, match="not a disk problem"):
        atomic_write(tmp_path / "x.json", broken)
    assert not list(tmp_path.iterdir())


def test_a_pipe_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "answers.csv"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    atomic_write(fifo, lambda f: f.write(b"start_s,end_s\n"))
    reader.join(timeout=10)
    assert received == [b"start_s,end_s\n"]
    assert fifo.is_fifo()


def test_an_out_that_is_a_pipe_needs_no_force_and_a_folder_is_refused(tmp_path):
    from voicegender.cli.common import check_output_path
    from voicegender.errors import VoiceGenderError

    fifo = tmp_path / "answers.csv"
    os.mkfifo(fifo)
    assert check_output_path(fifo, force=False) == fifo  # nothing there to lose
    with pytest.raises(VoiceGenderError, match="is a folder"):
        check_output_path(tmp_path, force=False)


def test_a_symlink_has_its_target_written_and_stays_a_link(tmp_path):
    target, link = tmp_path / "kept" / "answers.csv", tmp_path / "answers.csv"
    target.parent.mkdir()
    target.write_bytes(b"old\n")
    link.symlink_to(target)
    assert atomic_write(link, lambda f: f.write(b"new\n")) == target
    assert link.is_symlink() and target.read_bytes() == b"new\n"
    dangling = tmp_path / "later.csv"
    dangling.symlink_to(tmp_path / "kept" / "later.csv")
    atomic_write(dangling, lambda f: f.write(b"x\n"))
    assert dangling.is_symlink() and (tmp_path / "kept" / "later.csv").read_bytes() == b"x\n"
