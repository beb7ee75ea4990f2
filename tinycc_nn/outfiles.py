"""Writing results: an output folder replaced as a whole, a single output file.

Both are written to a temporary name beside their destination and renamed into place,
so a failed or interrupted run leaves the previous result (or nothing) behind, never a
half-written one.  Modes follow the umask like any file the user creates.  Anything the
file system refuses (a missing or unwritable parent, a file where a folder should be) is
a `TinyccError` naming the path.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import TinyccError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _refused(path, e: OSError) -> TinyccError:
    return TinyccError(f"{path}: cannot write: {e.strerror or e}")


def _check_parent(path: Path) -> Path:
    parent = path.absolute().parent
    if not parent.exists():
        raise TinyccError(f"{path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise TinyccError(f"{path}: {parent} is not a folder")
    return parent


def _foreign_entries(out: Path) -> list:
    """What in the folder `out` an earlier compile did not write (all of it unless a
    report.json names the target; its file list, when present, says what was written)."""
    entries = sorted(out.iterdir())
    odd = [p.name for p in entries if p.is_symlink() or not p.is_file()]
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        report = None
    if not isinstance(report, dict) or "target" not in report:
        return [p.name for p in entries]
    listed = report.get("files")       # absent in reports written before the list
    if isinstance(listed, list):
        odd += [p.name for p in entries if p.name not in listed and p.name not in odd]
    return odd


def check_folder_target(outdir) -> Path:
    """The output folder `outdir`, checked before any work is done."""
    out = Path(outdir)
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise TinyccError(f"{out}: exists and is not a folder")
        foreign = _foreign_entries(out)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise TinyccError(f"{out}: folder holds {shown}, not written by tinycc-nn; "
                              "remove them or choose another output folder")
    for p in out.absolute().parents:
        if p.exists():
            if not p.is_dir():
                raise TinyccError(f"{out}: {p} is not a folder")
            break
    return out


def write_folder(outdir, files: dict, make_parents: bool = False) -> Path:
    """Make `outdir` hold exactly `files` (name -> str|bytes), replacing it as a whole.

    An existing folder is replaced only when it is empty or an earlier compile's output;
    anything else in it is the user's, and the write is refused rather than mixing the two
    or deleting them.  make_parents creates missing parent folders (the library's write);
    the command line asks for an existing parent, as a C compiler does."""
    out = check_folder_target(outdir)
    created = []
    if make_parents:
        for p in reversed(out.absolute().parents):
            if not p.exists():
                try:
                    p.mkdir()
                except OSError as e:
                    _rmdirs(created)
                    raise _refused(p, e) from None
                created.append(p)
    parent = _check_parent(out)
    mask = _umask()
    tmp = old = None
    done = False
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=parent))
        for name, data in files.items():
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(tmp / name, mode) as f:
                f.write(data)
            os.chmod(tmp / name, 0o666 & ~mask)
        os.chmod(tmp, 0o777 & ~mask)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old", dir=parent))
            os.replace(out, old / "previous")
        os.replace(tmp, out)
        done = True
    except OSError as e:
        if old is not None and not out.exists():
            os.replace(old / "previous", out)
        raise _refused(out, e) from None
    finally:
        if not done:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            _rmdirs(created)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out


def _rmdirs(created) -> None:
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            pass


def check_file_target(path, suffixes) -> Path:
    """The output file `path`, checked before any work is done: a known suffix, an
    existing parent folder, not a folder itself."""
    out = Path(path)
    if out.suffix not in suffixes:
        raise TinyccError(f"{out}: the output name must end in {' or '.join(suffixes)}")
    if out.is_dir():
        raise TinyccError(f"{out}: is a folder; give a file name")
    _check_parent(out)
    return out


def write_file(path, save) -> Path:
    """Write the file `path` through `save(fileobj)`, renamed into place when complete."""
    out = Path(path)
    parent = _check_parent(out)
    mask = _umask()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
        with os.fdopen(fd, "wb") as f:
            save(f)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, out)
        tmp = None
    except OSError as e:
        raise _refused(out, e) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return out
