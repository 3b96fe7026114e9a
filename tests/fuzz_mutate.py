"""Seeded mutators of valid files for the fuzz campaigns (tests/test_fuzz.py, bench/fuzz.py).

:func:`mutate` applies one to three mutations drawn from ``rng`` (a ``random.Random``) and
returns ``(bytes, description)``. Besides blind byte-level damage (bit flips, interesting
integers, truncations, insertions, deletions, copies) it knows the formats the readers parse and
damages them where a reader trusts a number written in the file:

* zip archives: absurd sizes / offsets / counts in local headers, the central directory and its
  end record, a broken central directory, duplicate names, a member replaced by a deflate bomb,
  and a member mutated in place (then re-zipped with correct CRC and sizes, so that the damage
  reaches the member's own reader);
* pickles: opcodes claiming huge lengths, integers (tensor sizes, strides, offsets, storage
  element counts) replaced by absurd ones (2^40, 2^62, -1), nested pickles (torch storage
  streams) mutated in turn; protocol-4 frames are kept consistent;
* ``.npy`` headers (shape claiming 2^40 elements, other dtypes, object arrays);
* PNG ``IHDR`` (absurd width / height, CRC fixed); JSON documents (values swapped for huge
  numbers, wrong types, deep nesting); HTTP responses (status, Content-Length, chunk sizes).

Directories are ``{relative path: bytes}`` dicts (:func:`mutate_tree`).
"""

import json
import pickletools
import struct
import zlib

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 2 ** 40, 2 ** 62, 2 ** 63 - 1, 2 ** 64 - 1)
HUGE_INTS = (-1, -(2 ** 31), 2 ** 31 - 1, 2 ** 32, 2 ** 40, 2 ** 62, 2 ** 63, 10 ** 30)
BOMB_BYTES = 3 << 30            # what a zip bomb member inflates to (3 GiB of zeros)
_BOMB = {}


# ------------------------------------------------------------------------------------------
# Blind byte-level mutations.

def _flip(d, rng):
    if not d:
        return d, "flip(empty)"
    b = bytearray(d)
    n = rng.randint(1, 8)
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"flip {n} bits"


def _set_int(d, rng):
    if not d:
        return d, "set_int(empty)"
    width = rng.choice((1, 2, 4, 8))
    v = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
    i = rng.randrange(len(d))
    raw = v.to_bytes(width, rng.choice(("little", "big")))
    return d[:i] + raw + d[i + width:], f"int {v:#x} at {i}"


def _truncate(d, rng):
    n = rng.choice((0, 1, rng.randrange(len(d) + 1), len(d) - rng.randint(1, 64)))
    n = max(0, min(len(d), n))
    return d[:n], f"truncate to {n}"


def _insert(d, rng):
    i = rng.randrange(len(d) + 1)
    if d and rng.random() < 0.5:
        j = rng.randrange(len(d))
        chunk = d[j:j + rng.randint(1, 256)]
    else:
        chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return d[:i] + chunk + d[i:], f"insert {len(chunk)} at {i}"


def _delete(d, rng):
    if not d:
        return d, "delete(empty)"
    i = rng.randrange(len(d))
    n = rng.randint(1, 256)
    return d[:i] + d[i + n:], f"delete {n} at {i}"


def _copy(d, rng):
    if len(d) < 2:
        return d, "copy(short)"
    i, j, n = rng.randrange(len(d)), rng.randrange(len(d)), rng.randint(1, 512)
    chunk = d[i:i + n]
    return d[:j] + chunk + d[j + len(chunk):], f"copy {len(chunk)} from {i} to {j}"


BLIND = (_flip, _flip, _set_int, _truncate, _insert, _delete, _copy)


# ------------------------------------------------------------------------------------------
# Zip archives.

def _find_all(d, sig):
    out, i = [], d.find(sig)
    while i >= 0:
        out.append(i)
        i = d.find(sig, i + 1)
    return out


# (signature, {field: (offset, width)})
_ZIP_FIELDS = (
    (b"PK\x03\x04", {"method": (8, 2), "crc": (14, 4), "csize": (18, 4), "usize": (22, 4),
                     "name_len": (26, 2), "extra_len": (28, 2)}),
    (b"PK\x01\x02", {"method": (10, 2), "csize": (20, 4), "usize": (24, 4), "name_len": (28, 2),
                     "extra_len": (30, 2), "comment_len": (32, 2), "offset": (42, 4)}),
    (b"PK\x05\x06", {"entries_disk": (8, 2), "entries": (10, 2), "cd_size": (12, 4),
                     "cd_offset": (16, 4), "comment_len": (20, 2)}),
)


def _zip_field(d, rng):
    sig, fields = rng.choice(_ZIP_FIELDS)
    where = _find_all(d, sig)
    if not where:
        return _flip(d, rng)
    at = rng.choice(where)
    name = rng.choice(sorted(fields))
    off, width = fields[name]
    mask = (1 << (8 * width)) - 1
    v = rng.choice((0, 1, mask, mask >> 1, len(d), len(d) * 1000 & mask, rng.randrange(mask + 1)))
    raw = (v & mask).to_bytes(width, "little")
    pos = at + off
    return d[:pos] + raw + d[pos + width:], f"zip {sig[2:4].hex()} {name}={v:#x}"


def _zip_central(d, rng):
    """A broken central directory: cut, signature damaged, or end record lost."""
    cds, eocd = _find_all(d, b"PK\x01\x02"), d.rfind(b"PK\x05\x06")
    if not cds or eocd < 0:
        return _truncate(d, rng)
    how = rng.choice(("cut", "sig", "no_eocd", "swap"))
    if how == "cut":
        i = rng.randrange(cds[0], eocd)
        return d[:i] + d[eocd:], f"central directory cut at {i}"
    if how == "sig":
        i = rng.choice(cds)
        return d[:i] + b"PK\x09\x09" + d[i + 4:], f"central header at {i} damaged"
    if how == "no_eocd":
        return d[:eocd], "end of central directory removed"
    first = d[cds[0]:eocd]
    return d[:cds[0]] + first[::-1] + d[eocd:], "central directory reversed"


def _zip_entries(d):
    import io
    import zipfile
    with zipfile.ZipFile(io.BytesIO(d)) as z:
        return [(i.filename, i.compress_type, z.read(i)) for i in z.infolist()]


def _zip_rebuild(entries):
    """A zip of ``(name, method, data)`` entries; ``data`` may be a prepared
    ``(compressed, crc, usize)`` triple (deflate bombs)."""
    out, central = bytearray(), bytearray()
    for name, method, data in entries:
        if isinstance(data, tuple):
            comp, crc, usize = data
        else:
            crc, usize = zlib.crc32(data), len(data)
            comp = data if method == 0 else _deflate(data)
        raw_name = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(comp),
                           usize, len(raw_name), 0) + raw_name + comp
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                               len(comp), usize, len(raw_name), 0, 0, 0, 0, 0o644 << 16,
                               offset) + raw_name
    n = len(entries)
    return bytes(out + central + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n, n,
                                             len(central), len(out), 0))


def _deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zip_bomb(nbytes=None):
    """``(deflate stream, crc, size)`` of ``nbytes`` zeros (a multiple of 16 MiB), built once per
    size: after a full flush deflate restarts, so one compressed 16 MiB block is repeated."""
    nbytes = nbytes or BOMB_BYTES
    if nbytes not in _BOMB:
        block = bytes(16 << 20)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        one = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
        crc, n = 0, max(1, nbytes // len(block))
        for _ in range(n):
            crc = zlib.crc32(block, crc)
        _BOMB[nbytes] = (one * n + c.flush(), crc, n * len(block))
    return _BOMB[nbytes]


def _zip_member(d, rng, depth):
    try:
        entries = _zip_entries(d)
    except Exception:
        return _zip_field(d, rng)
    if not entries:
        return _zip_field(d, rng)
    k = rng.randrange(len(entries))
    name, method, data = entries[k]
    how = rng.random()
    if how < 0.06:
        entries[k] = (name, 8, zip_bomb())
        desc = f"member {name} -> deflate bomb of {entries[k][2][2] >> 20} MiB"
    elif how < 0.12:
        entries.insert(rng.randrange(len(entries) + 1), entries[k])
        desc = f"member {name} duplicated"
    elif how < 0.18:
        del entries[k]
        desc = f"member {name} removed"
    else:
        new, inner = mutate(data, rng, depth=depth + 1, rounds=1)
        entries[k] = (name, method, new)
        desc = f"member {name}: {inner}"
    return _zip_rebuild(entries), desc


# ------------------------------------------------------------------------------------------
# Pickles.

_LEN_OPS = {"BINBYTES": 4, "BINUNICODE": 4, "SHORT_BINBYTES": 1, "SHORT_BINUNICODE": 1,
            "BINBYTES8": 8, "BINUNICODE8": 8, "BYTEARRAY8": 8, "LONG4": 4, "FRAME": 8,
            "BINSTRING": 4, "SHORT_BINSTRING": 1}
_INT_OPS = ("BININT", "BININT1", "BININT2", "LONG1")


def _ops(d):
    """Opcodes of the pickle ``d`` as ``(name, arg, pos, end)``; stops at the first error."""
    out = []
    try:
        items = list(pickletools.genops(d))
    except Exception:
        return out
    for n, (op, arg, pos) in enumerate(items):
        end = items[n + 1][2] if n + 1 < len(items) else len(d)
        out.append((op.name, arg, pos, end))
    return out


def _replace(d, ops, pos, end, new):
    """``d`` with bytes ``[pos, end)`` replaced by ``new``; the frame holding them is resized."""
    delta = len(new) - (end - pos)
    out = d[:pos] + new + d[end:]
    if delta:
        frames = [(p, arg) for name, arg, p, _ in ops if name == "FRAME" and p < pos]
        if frames:
            fp, flen = frames[-1]
            if fp + 9 + flen > pos:          # the replaced opcode is inside this frame
                out = out[:fp + 1] + struct.pack("<Q", max(0, flen + delta)) + out[fp + 9:]
    return out


def _long1(v):
    n = (v.bit_length() + 8) // 8 if v >= 0 else ((-v - 1).bit_length() + 8) // 8
    return b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)


def _pickle(d, rng, depth):
    ops = _ops(d)
    if not ops:
        return _flip(d, rng)
    nested = [o for o in ops if o[0] in ("BINBYTES", "BINBYTES8") and o[1][:1] == b"\x80"]
    how = rng.random()
    if nested and depth < 2 and how < 0.35:         # a torch storage stream inside
        name, arg, pos, end = rng.choice(nested)
        new, inner = mutate(arg, rng, depth=depth + 1, rounds=1)
        return _replace(d, ops, pos, end, b"B" + struct.pack("<I", len(new)) + new), \
            f"nested pickle at {pos}: {inner}"
    lens = [o for o in ops if o[0] in _LEN_OPS]
    if lens and how < 0.6:
        name, arg, pos, end = rng.choice(lens)
        width = _LEN_OPS[name]
        v = rng.choice((2 ** (8 * width) - 1, 2 ** (8 * width - 1) - 1, 2 ** 31 - 1, 2 ** 40,
                        rng.randrange(2 ** (8 * width)))) % (2 ** (8 * width))
        raw = v.to_bytes(width, "little")
        return d[:pos + 1] + raw + d[pos + 1 + width:], f"pickle {name} at {pos} claims {v}"
    ints = [o for o in ops if o[0] in _INT_OPS]
    if ints:
        name, arg, pos, end = rng.choice(ints)
        v = rng.choice(HUGE_INTS + (0, arg + 1 if isinstance(arg, int) else 1))
        return _replace(d, ops, pos, end, _long1(v)), f"pickle int {arg} at {pos} -> {v}"
    return _flip(d, rng)


# ------------------------------------------------------------------------------------------
# npy headers, PNG, JSON, HTTP.

def _npy(d, rng):
    i = d.find(b"\x93NUMPY")
    if i < 0:
        return _flip(d, rng)
    major = d[i + 6]
    hl_size = 2 if major == 1 else 4
    hl = int.from_bytes(d[i + 8:i + 8 + hl_size], "little")
    start = i + 8 + hl_size
    shape = rng.choice(("(1099511627776,)", "(1048576, 1048576)", "(-1,)", "(0,)",
                        "(9223372036854775807,)", "(2, 3)", "()", "(1, 16, 32)",
                        "(2, 16, 1099511627776)"))
    descr = rng.choice(("'<f4'", "'<f4'", "'|O'", "'<f8'", "'>f4'", "'|V8'", "'<U10'", "'|b1'"))
    header = f"{{'descr': {descr}, 'fortran_order': {rng.choice(('False', 'True'))}, " \
             f"'shape': {shape}, }}".encode()
    header = header.ljust(((len(header) + start - i + 1 + 63) // 64) * 64 - (start - i) - 1)
    header += b"\n"
    new_hl = len(header).to_bytes(hl_size, "little")
    return d[:i + 8] + new_hl + header + d[start + hl:], f"npy header {header.strip()!r}"


def _png(d, rng):
    i = d.find(b"IHDR")
    if i < 4:
        return _flip(d, rng)
    w = rng.choice((0, 1, 2 ** 31 - 1, 2 ** 16, 8192, 1 << 20, 4, 3))
    h = rng.choice((w, w, 0, 2 ** 31 - 1, 5))
    body = struct.pack(">II", w, h) + d[i + 12:i + 17]
    chunk = b"IHDR" + body
    return d[:i] + chunk + struct.pack(">I", zlib.crc32(chunk)) + d[i + 21:], f"png {w}x{h}"


_JSON_VALUES = (10 ** 30, 2 ** 63, -1, -(10 ** 30), 1e308, float("nan"), "x", None, [], {},
                [[1.0] * 3], True, 2 ** 40, 0.5)


def _json(d, rng):
    try:
        doc = json.loads(d)
    except Exception:
        return _flip(d, rng)
    if rng.random() < 0.1:
        n = rng.choice((1000, 100000))
        return (b"[" * n + b"]" * n), f"json nested {n} deep"
    nodes = []

    def walk(x, setter):
        nodes.append(setter)
        if isinstance(x, list):
            for k in range(len(x)):
                walk(x[k], lambda v, x=x, k=k: x.__setitem__(k, v))
        elif isinstance(x, dict):
            for k in list(x):
                walk(x[k], lambda v, x=x, k=k: x.__setitem__(k, v))

    holder = [doc]
    walk(doc, lambda v: holder.__setitem__(0, v))
    v = rng.choice(_JSON_VALUES)
    rng.choice(nodes)(v)
    return json.dumps(holder[0]).encode(), f"json value -> {v!r}"


def _http(d, rng):
    head, sep, body = d.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    how = rng.random()
    if how < 0.3:
        lines[0] = rng.choice((b"HTTP/1.1 404 Not Found", b"HTTP/1.1 500 x", b"HTTP/1.1 200",
                               b"HTTP/9.9 200 OK", b"garbage", b"HTTP/1.1 301 Moved",
                               b"HTTP/1.1 99999999999999999999 OK"))
        desc = f"status {lines[0]!r}"
    elif how < 0.7:
        lines = [x for x in lines if not x.lower().startswith(b"content-length")]
        v = rng.choice((b"0", b"-5", b"99999999999999999999", b"1e9", b"abc", b"",
                        str(len(body) + rng.randint(1, 10 ** 6)).encode(),
                        str(max(0, len(body) - rng.randint(1, 100))).encode()))
        lines.append(b"Content-Length: " + v)
        desc = f"Content-Length {v!r}"
    else:
        lines = [x for x in lines if not x.lower().startswith(b"content-length")]
        lines.append(b"Transfer-Encoding: chunked")
        size = rng.choice((b"%x" % len(body), b"ffffffffffffffff", b"zz", b"10000000000",
                           b"-1", b"%x" % (len(body) + 7)))
        end = rng.choice((b"\r\n0\r\n\r\n", b"", b"\r\n"))
        body = size + b"\r\n" + body + end
        desc = f"chunked, size {size!r}"
    return b"\r\n".join(lines) + sep + body, desc


def _structured(d, rng, depth):
    if d[:4] == b"PK\x03\x04" or (b"PK\x05\x06" in d[-4096:]):
        return rng.choice((_zip_field, _zip_central, lambda d, rng: _zip_member(d, rng, depth),
                           lambda d, rng: _zip_member(d, rng, depth)))(d, rng)
    if d[:1] == b"\x80":
        return _pickle(d, rng, depth)
    if d[:6] == b"\x93NUMPY":
        return _npy(d, rng)
    if d[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(d, rng)
    if d[:1] in (b"{", b"["):
        return _json(d, rng)
    if d[:5] == b"HTTP/":
        return _http(d, rng)
    return None


def mutate(data, rng, depth=0, rounds=None):
    """``(mutated bytes, description)``: ``rounds`` (default 1 to 3) mutations, each a
    format-aware one (when ``data``'s format is known) or a blind one, with equal odds."""
    descs = []
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        out = _structured(data, rng, depth) if rng.random() < 0.6 else None
        if out is None:
            out = rng.choice(BLIND)(data, rng)
        data, desc = out
        descs.append(desc)
    return data, "; ".join(descs)


def mutate_tree(tree, rng):
    """A mutated copy of ``{relpath: bytes}``: one file mutated, removed or added."""
    tree = dict(tree)
    names = sorted(tree)
    how = rng.random()
    if how < 0.08 and names:
        name = rng.choice(names)
        del tree[name]
        return tree, f"{name} removed"
    if how < 0.14:
        src = rng.choice(names) if names else None
        name = rng.choice(("extra.png", "sub/extra.jpg", "zz.bmp", "dataset.json"))
        tree[name] = tree.get(src, b"") if rng.random() < 0.5 else b"\x00" * rng.randint(0, 99)
        return tree, f"{name} added"
    weights = [3 if n.endswith(".json") else 1 for n in names]
    name = rng.choices(names, weights)[0]
    tree[name], desc = mutate(tree[name], rng)
    return tree, f"{name}: {desc}"
