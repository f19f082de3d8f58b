#!/usr/bin/env python3
"""Cuts a small, real slice out of a kernel's raw BTF for the btf_parse fuzz seeds.

    fuzz/seeds/btf_slice.py /sys/kernel/btf/vmlinux OUT STRUCT...

Keeps the named structs and every type they contain by value (members, arrays, typedefs,
qualifiers), renumbered and with a fresh string section. Pointers are kept but point at void,
so the slice stays a few KiB instead of pulling in the whole kernel. Offsets and sizes of the
kept fields are the real ones.
"""
import struct
import sys

# Bytes after the 12-byte type header, per kind, as a function of vlen.
TAIL = {1: lambda v: 4, 2: lambda v: 0, 3: lambda v: 12, 4: lambda v: 12 * v,
        5: lambda v: 12 * v, 6: lambda v: 8 * v, 7: lambda v: 0, 8: lambda v: 0,
        9: lambda v: 0, 10: lambda v: 0, 11: lambda v: 0, 12: lambda v: 0,
        13: lambda v: 8 * v, 14: lambda v: 4, 15: lambda v: 12 * v, 16: lambda v: 0,
        17: lambda v: 4, 18: lambda v: 0, 19: lambda v: 12 * v}
MODIFIERS = {8, 9, 10, 11, 18}  # typedef, volatile, const, restrict, type_tag


def read(path):
    data = open(path, "rb").read()
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data)
    assert magic == 0xEB9F, "not little-endian raw BTF"
    types_at = hdr_len + type_off
    strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
    types = [None]  # id 0 is void
    pos = types_at
    while pos < types_at + type_len:
        name_off, info, size_or_type = struct.unpack_from("<III", data, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        tail = data[pos + 12: pos + 12 + TAIL[kind](vlen)]
        types.append([name_off, info, size_or_type, tail])
        pos += 12 + len(tail)
    return types, strings


def name(strings, off):
    return strings[off: strings.index(b"\0", off)].decode()


def main():
    src, out, roots = sys.argv[1], sys.argv[2], sys.argv[3:]
    types, strings = read(src)
    by_name = {}
    for i, t in enumerate(types[1:], 1):
        kind = (t[1] >> 24) & 0x1F
        if kind in (4, 5) and t[0] and name(strings, t[0]) not in by_name:
            by_name[name(strings, t[0])] = i

    keep, order = {}, []

    def visit(i):
        if i == 0 or i in keep:
            return
        keep[i] = None
        t = types[i]
        kind = (t[1] >> 24) & 0x1F
        if kind in MODIFIERS:
            visit(t[2])
        elif kind == 3:
            elem, index, _n = struct.unpack_from("<III", t[3])
            visit(elem)
            visit(index)
        elif kind in (4, 5):
            for m in range(len(t[3]) // 12):
                visit(struct.unpack_from("<III", t[3], m * 12)[1])
        order.append(i)

    for root in roots:
        visit(by_name[root])
    new_id = {old: n for n, old in enumerate(sorted(keep), 1)}
    new_id[0] = 0

    new_strings = bytearray(b"\0")
    offsets = {0: 0}

    def s(off):
        if off not in offsets:
            offsets[off] = len(new_strings)
            new_strings.extend(name(strings, off).encode() + b"\0")
        return offsets[off]

    body = bytearray()
    for old in sorted(keep):
        name_off, info, size_or_type, tail = types[old]
        kind = (info >> 24) & 0x1F
        tail = bytearray(tail)
        if kind == 2:
            size_or_type = 0  # pointers point at void: keeps the slice small
        elif kind in MODIFIERS:
            size_or_type = new_id[size_or_type]
        elif kind == 3:
            elem, index, n = struct.unpack_from("<III", tail)
            struct.pack_into("<III", tail, 0, new_id[elem], new_id[index], n)
        elif kind in (4, 5):
            for m in range(len(tail) // 12):
                mn, mt, mo = struct.unpack_from("<III", tail, m * 12)
                struct.pack_into("<III", tail, m * 12, s(mn), new_id[mt], mo)
        elif kind == 6:
            for m in range(len(tail) // 8):
                en, ev = struct.unpack_from("<Ii", tail, m * 8)
                struct.pack_into("<Ii", tail, m * 8, s(en), ev)
        elif kind == 19:
            for m in range(len(tail) // 12):
                en, lo, hi = struct.unpack_from("<III", tail, m * 12)
                struct.pack_into("<III", tail, m * 12, s(en), lo, hi)
        body += struct.pack("<III", s(name_off), info, size_or_type) + tail

    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body),
                         len(new_strings))
    open(out, "wb").write(header + body + new_strings)
    print(f"{out}: {len(keep)} types, {24 + len(body) + len(new_strings)} bytes")


main()
