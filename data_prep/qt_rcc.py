"""A reader of Qt binary resource archives (``.rcc``), enough to take files out of one.

Qt applications ship their sounds and images in archives made by ``rcc
-binary`` (GCompris: ``/usr/share/gcompris-qt/rcc/*.rcc``). `RccArchive` lists
the files of one and returns their bytes; `data_prep/fetch_debian_sounds.py`
uses it. The format (Qt's ``rcc.cpp`` writes it, ``qresource.cpp`` reads it),
every integer big-endian:

header
    ``b"qres"``, then uint32 version (1, 2 or 3), uint32 offset of the tree,
    uint32 offset of the data, uint32 offset of the names; version 3 adds a
    uint32 of flags (which compressions occur). Offsets count from the start
    of the file.
tree
    An array of nodes; node 0 is the root directory. A node is uint32 name
    offset, uint16 flags, then for a directory (flag 2) uint32 child count and
    uint32 index of its first child (children are consecutive), for a file
    uint16 territory, uint16 language and uint32 data offset; from version 2
    every node ends with a uint64 modification time (ms). A node is 14 bytes
    long in version 1 and 22 bytes from version 2 on.
names
    At each name offset: uint16 length in UTF-16 code units, uint32 hash (not
    needed to read), the name in UTF-16 big-endian.
data
    At each data offset: uint32 size, then that many bytes: the file itself,
    or with flag 1 (zlib) a uint32 uncompressed length followed by a zlib
    stream (``qCompress``), or with flag 4 a zstd frame (read only when the
    ``zstandard`` package is installed; GCompris 3.1 uses none).

A file present for several locales (same path, other language / territory)
is listed once: the first node in the tree wins.

Example
-------
>>> import struct
>>> def name(text):
...     return struct.pack(">HI", len(text), 0) + text.encode("utf-16-be")
>>> names = name("a.txt")
>>> data = struct.pack(">I", 2) + b"hi"
>>> tree = struct.pack(">IHII", 0, 2, 1, 1) + struct.pack(">IHHHI", 0, 0, 0, 0, 0)
>>> header = b"qres" + struct.pack(">IIII", 1, 20, 20 + len(tree), 20 + len(tree) + len(data))
>>> archive = RccArchive(header + tree + data + names)
>>> archive.names(), archive.read("a.txt")
(['a.txt'], b'hi')

Authors
 * audio-interpret contributors 2026
"""

import struct
import zlib

MAGIC = b"qres"
FLAG_COMPRESSED = 0x01  # zlib, qCompress framing (uint32 length + zlib stream)
FLAG_DIRECTORY = 0x02
FLAG_COMPRESSED_ZSTD = 0x04


class RccArchive:
    """The files of a Qt binary resource archive.

    Arguments
    ---------
    data : bytes
        The whole archive.
    source : str
        What the messages call it (its path).
    """

    def __init__(self, data, source="<rcc>"):
        self.data, self.source = bytes(data), source
        if self.data[:4] != MAGIC:
            raise ValueError(
                f"{source} is not a Qt resource archive (it does not start with qres)."
            )
        version, tree, self._data_offset, self._names_offset = self._unpack(">IIII", 4)
        if version not in (1, 2, 3):
            raise ValueError(
                f"{source} is a Qt resource archive of version {version}; this reader knows "
                f"versions 1 to 3: extend data_prep/qt_rcc.py."
            )
        node_size = 14 if version == 1 else 22
        self._files = {}  # path -> (flags, data offset)
        pending, seen = [(0, "")], set()  # (node index, path of its parent folder)
        while pending:
            index, folder = pending.pop()
            if index in seen:
                raise ValueError(f"{source} is corrupt: its tree loops through node {index}.")
            seen.add(index)
            at = tree + index * node_size
            name_offset, flags = self._unpack(">IH", at)
            path = f"{folder}{self._name(name_offset)}" if index else ""
            if flags & FLAG_DIRECTORY:
                count, first = self._unpack(">II", at + 6)
                self._unpack(f">{count * node_size}s", tree + first * node_size)  # bounds check
                prefix = f"{path}/" if path else ""
                pending.extend((child, prefix) for child in reversed(range(first, first + count)))
            else:
                (offset,) = self._unpack(">I", at + 10)
                self._files.setdefault(path, (flags, offset))

    def _unpack(self, layout, at):
        end = at + struct.calcsize(layout)
        if at < 0 or end > len(self.data):
            raise ValueError(
                f"{self.source} is truncated or corrupt: it points past its end ({end} > "
                f"{len(self.data)} bytes)."
            )
        return struct.unpack_from(layout, self.data, at)

    def _name(self, offset):
        at = self._names_offset + offset
        (length,) = self._unpack(">H", at)
        self._unpack(f">{2 * length}s", at + 6)  # bounds check
        try:
            return self.data[at + 6 : at + 6 + 2 * length].decode("utf-16-be")
        except UnicodeDecodeError as err:
            raise ValueError(f"{self.source} is corrupt: a name at byte {at} is not UTF-16 ({err}).") from err

    def names(self):
        """The paths of the files, sorted ("folder/sub/file.ogg", no leading slash)."""
        return sorted(self._files)

    def read(self, path):
        """The bytes of the file at `path`, decompressed.

        Raises KeyError naming the archive when there is no such file.
        """
        if path not in self._files:
            raise KeyError(f"{self.source} has no file {path!r}")
        flags, offset = self._files[path]
        at = self._data_offset + offset
        (size,) = self._unpack(">I", at)
        (payload,) = self._unpack(f">{size}s", at + 4)
        if flags & FLAG_COMPRESSED:
            (length,) = self._unpack(">I", at + 4)
            try:
                content = zlib.decompress(payload[4:])
            except zlib.error as err:
                raise ValueError(f"{self.source}: {path} is corrupt ({err}).") from err
            if len(content) != length:
                raise ValueError(
                    f"{self.source}: {path} decompresses to {len(content)} bytes, not {length}."
                )
            return content
        if flags & FLAG_COMPRESSED_ZSTD:
            try:
                import zstandard
            except ImportError as err:
                raise ValueError(
                    f"{self.source}: {path} is zstd-compressed; install the zstandard package "
                    f"(pip install zstandard) to read it."
                ) from err
            return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
        return payload
