#!/usr/bin/env python3
"""make_seeds: write the seed corpora of the vector codec fuzz targets into corpus/<target>/.

Every vector seed starts with the dimension byte of fuzz_vec.h (an index into fuzz_vec_dims),
followed by the value. Some seeds are valid, some are broken on purpose, so that the fuzzer
starts from both sides of every check. Run it again after changing the dimension table; the
payload seeds are plain JSON written by hand.
"""
import os
import random
import struct

# Indexes into fuzz_vec_dims in fuzz_vec.h: {0, 1, 2, 3, 4, 5, 8, 16, 384, 1536}.
DIM_INDEX = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 8: 6, 16: 7, 384: 8, 1536: 9}
FLOAT4_OID = 700
HERE = os.path.dirname(os.path.abspath(__file__))


def f32_bits(value):
    return struct.pack(">f", value)


def pgvector(values, unused=0):
    return struct.pack(">HH", len(values), unused) + b"".join(f32_bits(v) for v in values)


def real_array(values, ndim=1, flags=0, oid=FLOAT4_OID, lbound=1):
    out = struct.pack(">iiIii", ndim, flags, oid, len(values), lbound)
    for v in values:
        out += struct.pack(">i", 4) + f32_bits(v)
    return out


def text(values):
    return ("[" + ",".join("%.9g" % v for v in values) + "]").encode()


def awkward(dim, seed):
    """Edge values first (signed zero, subnormals, extremes), then random finite floats."""
    rng = random.Random(seed)
    special = [0.0, -0.0, 1.0, -1.0, 3.4028234663852886e38, 1.1754943508222875e-38,
               1.401298464324817e-45, -1.401298464324817e-45, 0.1, 1.0 / 3.0]
    values = special[:dim]
    while len(values) < dim:
        (v,) = struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))
        if v == v and abs(v) != float("inf"):
            values.append(v)
    return values


def write(target, name, dim, payload):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as seed:
        seed.write(bytes([DIM_INDEX[dim]]) + payload)


def main():
    small = [1.0, -2.5, 0.5]
    nan = struct.unpack(">f", b"\x7f\xc0\x00\x00")[0]

    write("vec_pgvector", "small", 3, pgvector(small))
    write("vec_pgvector", "empty", 0, pgvector([]))
    write("vec_pgvector", "awkward16", 16, pgvector(awkward(16, 1)))
    write("vec_pgvector", "full1536", 1536, pgvector(awkward(1536, 2)))
    write("vec_pgvector", "unused_field_set", 2, pgvector([-0.0, 5e-45], unused=0xBEEF))
    write("vec_pgvector", "bad_dimension", 4, pgvector(small))
    write("vec_pgvector", "bad_truncated", 3, pgvector(small)[:-1])
    write("vec_pgvector", "bad_trailing", 3, pgvector(small) + b"\0")
    write("vec_pgvector", "bad_nan", 3, pgvector([1.0, nan, 0.5]))
    write("vec_pgvector", "bad_inf", 1, pgvector([float("inf")]))

    write("vec_real_array", "small", 3, real_array(small))
    write("vec_real_array", "empty", 0, real_array([]))
    write("vec_real_array", "awkward8", 8, real_array(awkward(8, 3)))
    write("vec_real_array", "full1536", 1536, real_array(awkward(1536, 4)))
    write("vec_real_array", "free_fields_set", 2, real_array([-0.0, 1.0], flags=1, lbound=-7))
    write("vec_real_array", "bad_ndim", 3, real_array(small, ndim=2))
    write("vec_real_array", "bad_oid", 3, real_array(small, oid=701))
    write("vec_real_array", "bad_length", 4, real_array(small))
    write("vec_real_array", "bad_truncated", 3, real_array(small)[:-2])
    write("vec_real_array", "bad_trailing", 3, real_array(small) + b"\0\0")
    null_element = bytearray(real_array(small))
    null_element[28:32] = struct.pack(">i", -1)
    write("vec_real_array", "bad_null_element", 3, bytes(null_element[:32] + null_element[36:]))
    long_element = bytearray(real_array(small))
    long_element[20:24] = struct.pack(">i", 8)
    write("vec_real_array", "bad_element_length", 3, bytes(long_element))
    write("vec_real_array", "bad_nan", 3, real_array([1.0, nan, 0.5]))

    write("vec_text", "small", 3, text(small))
    write("vec_text", "empty", 0, b"[]")
    write("vec_text", "spaces", 3, b" [ 1 ,\t-2.5e0 ,\n0.5 ]\n")
    write("vec_text", "awkward16", 16, text(awkward(16, 5)))
    write("vec_text", "domain384", 384, text(awkward(384, 6)))
    write("vec_text", "underflow_and_hex", 4, b"[1e-50,-1e-50,0x1p-3,1E+3]")
    write("vec_text", "bad_missing_bracket", 3, b"[1,-2.5,0.5")
    write("vec_text", "bad_empty_number", 3, b"[1,,0.5]")
    write("vec_text", "bad_nan", 3, b"[1,nan,0.5]")
    write("vec_text", "bad_overflow", 3, b"[1,1e39,0.5]")
    write("vec_text", "bad_trailing", 3, b"[1,-2.5,0.5]x")
    write("vec_text", "bad_count", 4, b"[1,-2.5,0.5]")
    write("vec_text", "bad_long_token", 1, b"[" + b"1" * 64 + b"]")
    # One element more than the dimension: a decoder that writes it before counting overruns by
    # one float, which only an exact-size buffer (and the sanitizer) shows.
    write("vec_text", "bad_one_extra_dim0", 0, b"[1]")
    write("vec_text", "bad_one_extra_dim1", 1, b"[1,2]")
    write("vec_text", "bad_one_extra_dim3", 3, b"[1,-2.5,0.5,4]")
    write("vec_text", "bad_one_extra_dim16", 16, text(awkward(17, 7)))
    write("vec_text", "bad_one_extra_dim384", 384, text(awkward(385, 8)))
    write("vec_pgvector", "bad_one_extra_dim3", 3, pgvector(small + [4.0]))
    write("vec_real_array", "bad_one_extra_dim3", 3, real_array(small + [4.0]))


if __name__ == "__main__":
    main()
