"""Zip archives from outside (datasets, ``.keras`` networks, detector files, ``.npz``): what the
zip layer raises on a damaged archive, and a check of each member's declared sizes against the
archive's real size before anything is inflated (no zip bombs, no sizes taken on trust).

The readers turn :data:`ZIP_ERRORS` and :func:`size_problem` into their own one-line error that
names the file.
"""

import os
import struct
import zipfile
import zlib

__all__ = ["ZIP_ERRORS", "MAX_RATIO", "size_problem", "archive_problem", "read_member"]

# Beyond BadZipFile, a damaged archive makes :mod:`zipfile` raise: EOFError (a member's data
# ends early), zlib.error (a corrupt deflate stream), NotImplementedError (an unknown method),
# RuntimeError (an encrypted member), UnicodeDecodeError / ValueError (a bad name, a negative
# seek), OSError, struct.error, OverflowError and KeyError (a name in the directory without its
# header).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
              RuntimeError, KeyError, struct.error, OverflowError)

# Most bytes one member may inflate to, per compressed byte (deflate reaches ~1030 on zeros;
# weights, images and JSON written by the tools stay far below), beyond a first MiB.
MAX_RATIO = 100
_SLACK = 1 << 20


def size_problem(info, archive_size):
    """Why ``info``'s declared sizes cannot be trusted (a string), or None: a compressed size
    beyond the archive itself, or more than :data:`MAX_RATIO` bytes inflated per byte stored
    (a zip bomb). :mod:`zipfile` never reads past either declared size, so a member that passes
    inflates to at most ``MAX_RATIO`` times the archive's real size."""
    if info.compress_size > archive_size:
        return (f"member {info.filename!r} claims {info.compress_size} compressed bytes, more "
                f"than the whole archive ({archive_size} bytes)")
    if info.file_size > MAX_RATIO * info.compress_size + _SLACK:
        return (f"member {info.filename!r} claims to inflate {info.compress_size} bytes to "
                f"{info.file_size} (over {MAX_RATIO}x: a zip bomb?)")
    return None


def archive_problem(zf, path=None):
    """The first :func:`size_problem` among the members of the open archive ``zf`` (whose file
    is ``path``, or ``zf.fp``), or None."""
    if path is not None:
        size = os.path.getsize(path)
    else:
        pos = zf.fp.tell()
        size = zf.fp.seek(0, os.SEEK_END)
        zf.fp.seek(pos)
    for info in zf.infolist():
        problem = size_problem(info, size)
        if problem:
            return problem
    return None


def read_member(zf, info, limit=None):
    """The bytes of member ``info`` of the open archive ``zf`` (at most ``limit``), once its
    declared sizes pass :func:`size_problem`; a failing member raises ``zipfile.BadZipFile``."""
    pos = zf.fp.tell()
    size = zf.fp.seek(0, os.SEEK_END)
    zf.fp.seek(pos)
    problem = size_problem(info, size)
    if problem:
        raise zipfile.BadZipFile(problem)
    with zf.open(info) as f:
        return f.read(-1 if limit is None else limit)
