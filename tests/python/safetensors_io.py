# A small numpy reader and writer for the safetensors files of `baton export` and `--init-from`:
# an 8-byte little-endian header length N, N bytes of JSON header (name -> dtype, shape, data_offsets,
# plus "__metadata__": {str: str}), then the data buffer. Only F32 and I64 tensors, as baton writes.
import json
import struct

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}
CODES = {"float32": "F32", "int64": "I64"}  # numpy dtype name (any byte order) -> safetensors dtype


def write(path, tensors, metadata):
    """Writes {name: numpy array} and {str: str} metadata; the header is space-padded to 8 bytes and,
    as baton's writer does, int64 tensors come first so that every tensor is aligned to its element size."""
    header, data, offset = {}, [], 0
    for name, array in sorted(tensors.items(), key=lambda item: -np.asarray(item[1]).itemsize):
        code = CODES.get(np.asarray(array).dtype.name)
        if code is None:
            raise ValueError(f"{name}: dtype {np.asarray(array).dtype} is neither float32 nor int64")
        data.append(np.asarray(array).astype(DTYPES[code]).tobytes())
        header[name] = {"dtype": code, "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(data[-1])]}
        offset += len(data[-1])
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("safetensors metadata keys and values must be strings")
    header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(data))


def read(path):
    """({name: numpy array}, metadata) of a safetensors file; fails on anything malformed."""
    with open(path, "rb") as f:
        content = f.read()
    if len(content) < 8:
        raise ValueError(f"{path}: {len(content)} bytes, too short for the 8-byte header length")
    (length,) = struct.unpack("<Q", content[:8])
    if 8 + length > len(content):
        raise ValueError(f"{path}: header length {length} runs past the end of the {len(content)}-byte file")
    header = json.loads(content[8:8 + length])
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")
    buffer = content[8 + length:]
    tensors, end = {}, 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        begin, stop = entry["data_offsets"]
        dtype = DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: {name} has dtype {entry['dtype']}, not F32 or I64")
        if begin != end or stop - begin != dtype.itemsize * int(np.prod(entry["shape"])):
            raise ValueError(f"{path}: {name} has data_offsets {[begin, stop]} for shape {entry['shape']} "
                             f"{entry['dtype']}; tensors must fill the buffer in order from {end}")
        if stop > len(buffer):
            raise ValueError(f"{path}: {name} ends at byte {stop} of a {len(buffer)}-byte data buffer (truncated?)")
        count = (stop - begin) // dtype.itemsize
        tensors[name] = np.frombuffer(buffer, dtype, count, begin).reshape(entry["shape"]).copy()  # aligned
        end = stop
    if end != len(buffer):
        raise ValueError(f"{path}: the data buffer holds {len(buffer)} bytes but the tensors cover {end}")
    return tensors, metadata
