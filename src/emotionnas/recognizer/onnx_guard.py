"""ONNX graph files checked before onnxruntime sees them, and a cap on what their sessions allocate.

A model folder comes from elsewhere, so its graphs are data. Handed straight to onnxruntime, a
garbage `member0.onnx` gave a 30-line traceback, a 2 GB sparse file was read whole, and a graph
whose `ConstantOfShape` asks for 6.4 GB was stopped only by an outside memory limit. Here, in order:

1. `os.stat` only: the file must be a regular file (a FIFO would block the read) of at most
   MAX_GRAPH_BYTES. The exporter's largest graph is the whisper-base encoder (~80 MB of float32
   weights; whisper-tiny.en's ~32 MB, members well under 10 MB), so 1 GiB is > 12x anything it writes.
2. The bytes are read once (never more than the bound, whatever the file system says) and parsed
   with the `onnx` package: a malformed file is one line naming it. External data (tensors kept
   in other files, which onnxruntime would open by a name the graph gives) is refused: the
   exporter never writes it.
3. The graph and its subgraphs (Loop, If, Scan bodies) are walked: an op whose output size is set
   by constants of the graph (ConstantOfShape, Expand, Tile, Range, RandomNormal, RandomUniform;
   also sparse tensors, which are made dense) may not ask for more than MAX_TENSOR_BYTES. Refused
   here, nothing is allocated and no session is made.
4. The session is made from those same bytes; whatever onnxruntime still refuses is one line.
   Its CPU allocations go to one arena shared by the process's recognizer sessions and capped at
   SESSION_ARENA_BYTES (onnxruntime's OrtArenaCfg max_mem, registered as an environment
   allocator): a size computed only at run time, from the input, gets onnxruntime's "Available
   memory of ... is smaller than requested bytes" instead of the allocation.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

from emotionnas.data.file_kind import file_problem
from emotionnas.errors import ConfigError

MAX_GRAPH_BYTES = 2 ** 30       # per graph file (the whisper-base encoder graph is ~80 MB)
MAX_TENSOR_BYTES = 2 ** 30      # per tensor whose size the graph's constants set
SESSION_ARENA_BYTES = 4 * 2 ** 30  # every recognizer session of the process together (AudioLimits decodes <= 4 GiB)
# op -> the inputs whose constant values set its output size (Range: start, limit, delta)
_SIZED_BY_INPUTS = {"ConstantOfShape": (0,), "Expand": (1,), "Tile": (0, 1), "Range": (0, 1, 2)}
_SIZED_BY_SHAPE_ATTRIBUTE = ("RandomNormal", "RandomUniform")
_SMALL = 4096  # constants with more elements are never shapes; they are not converted


def _mb(n: int) -> str:
    return f"{n / 2 ** 20:,.0f} MB"


def read_graph(path: Path) -> bytes:
    """The graph file's bytes, refused in one line when it is not a regular file or is over the bound."""
    problem = file_problem(path)
    if problem is not None:
        raise ConfigError(f"{path}: ONNX graph {problem}")
    size = os.stat(path).st_size
    if size > MAX_GRAPH_BYTES:
        raise ConfigError(f"{path}: ONNX graph of {_mb(size)} > limit {_mb(MAX_GRAPH_BYTES)} per graph")
    with open(path, "rb") as f:
        data = f.read(MAX_GRAPH_BYTES + 1)  # the file may have grown since stat
    if len(data) > MAX_GRAPH_BYTES:
        raise ConfigError(f"{path}: ONNX graph over the limit of {_mb(MAX_GRAPH_BYTES)} per graph")
    return data


def check_graph(data: bytes, name: str) -> None:
    """Parse the graph and refuse what the module docstring lists (steps 2 and 3); ConfigError
    naming `name`."""
    try:
        import onnx
    except ImportError:
        raise ConfigError("the ONNX backend checks each graph with the `onnx` package before running it: "
                          "pip install 'emotionnas[onnx]'") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: one line
        raise ConfigError(f"{name}: not a readable ONNX graph ({type(e).__name__})") from None
    if not model.HasField("graph"):
        raise ConfigError(f"{name}: not a readable ONNX graph (no graph in it)")
    _check_subgraph(model.graph, {}, name)


def _check_subgraph(graph, outer: dict, name: str) -> None:
    """One graph's initializers and nodes, then the subgraphs of its nodes (which see its constants)."""
    from onnx import TensorProto
    known = dict(outer)
    for t in graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            raise ConfigError(f"{name}: initializer {t.name!r} keeps its data in another file; "
                              "the exporter never writes external data")
        _remember(known, t.name, t)
    for s in graph.sparse_initializer:
        _bound(_dense_bytes(s), name, f"sparse initializer {s.values.name!r}")
    for node in graph.node:
        label = f"node {node.name or (node.output[0] if node.output else '?')!r} ({node.op_type})"
        _check_node(node, known, name, label)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _check_subgraph(sub, known, name)


def _check_node(node, known: dict, name: str, label: str) -> None:
    """Bound what `node` asks for when its constants say; remember the small constants it makes."""
    if node.op_type == "Constant":
        for attr in node.attribute:
            if attr.name == "value" and node.output:
                _remember(known, node.output[0], attr.t)
            elif attr.name == "sparse_value":
                _bound(_dense_bytes(attr.sparse_tensor), name, label)
        return
    if node.op_type in _SIZED_BY_SHAPE_ATTRIBUTE:
        shape = next((list(a.ints) for a in node.attribute if a.name == "shape"), None)
        if shape is not None:
            _bound(_elements(shape, name, label) * _attribute_itemsize(node, "dtype"), name, label)
        return
    inputs = _SIZED_BY_INPUTS.get(node.op_type)
    if inputs is None:
        return
    values = [known.get(node.input[i]) if i < len(node.input) else None for i in inputs]
    if node.op_type == "ConstantOfShape" and values[0] is not None:
        _bound(_elements(values[0], name, label) * _value_itemsize(node), name, label)
    elif node.op_type == "Expand" and values[0] is not None:
        _bound(_elements(values[0], name, label) * 4, name, label)
    elif node.op_type == "Tile" and values[1] is not None:
        base = len(values[0]) if values[0] is not None else 1
        _bound(base * _elements(values[1], name, label) * 4, name, label)
    elif node.op_type == "Range" and all(v is not None and len(v) == 1 for v in values):
        start, limit, delta = (float(v[0]) for v in values)
        n = math.ceil((limit - start) / delta) if delta and math.isfinite((limit - start) / delta) else math.inf
        _bound(max(n, 0) * 8, name, label)


def _remember(known: dict, key: str, tensor) -> None:
    """Keep small integer or float constants (shapes, repeats, range ends) as Python lists."""
    from onnx import numpy_helper
    # float32, int32, int64, float16, float64; a scalar has no dims and one element (prod of () is 1)
    if 0 < math.prod(tensor.dims) <= _SMALL and tensor.data_type in (1, 6, 7, 10, 11):
        try:
            known[key] = numpy_helper.to_array(tensor).reshape(-1).tolist()
        except Exception:  # noqa: BLE001 - a malformed constant: onnxruntime refuses it later
            pass


def _elements(shape, name: str, label: str) -> int:
    if any(int(d) < 0 for d in shape):
        raise ConfigError(f"{name}: {label} has a negative dimension in {list(shape)}")
    return math.prod(int(d) for d in shape)


def _dense_bytes(sparse) -> int:
    return math.prod(max(int(d), 0) for d in sparse.dims) * _itemsize(sparse.values.data_type)


def _itemsize(data_type: int) -> int:
    from onnx import helper
    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except Exception:  # noqa: BLE001 - strings, undefined: count 4 bytes an element
        return 4


def _value_itemsize(node) -> int:
    """ConstantOfShape's element size: its `value` tensor's type (float32 by default)."""
    return next((_itemsize(a.t.data_type) for a in node.attribute if a.name == "value"), 4)


def _attribute_itemsize(node, key: str) -> int:
    return next((_itemsize(a.i) for a in node.attribute if a.name == key), 4)


def _bound(n_bytes: int | float, name: str, label: str) -> None:
    if n_bytes > MAX_TENSOR_BYTES:
        raise ConfigError(f"{name}: {label} asks for {n_bytes / 2 ** 30:,.1f} GB > limit "
                          f"{MAX_TENSOR_BYTES / 2 ** 30:g} GB per tensor; refused before onnxruntime runs it")


@lru_cache(maxsize=1)
def _register_capped_arena() -> None:
    """One CPU arena for the process's recognizer sessions, capped at SESSION_ARENA_BYTES."""
    import onnxruntime as ort
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(SESSION_ARENA_BYTES, -1, -1, -1))


def checked_session(path, opts):
    """An onnxruntime session of the graph at `path` after steps 1-3, allocating from the capped
    arena; anything onnxruntime refuses is a one-line ConfigError naming the file."""
    import onnxruntime as ort
    path = Path(path)
    data = read_graph(path)
    check_graph(data, str(path))
    _register_capped_arena()
    opts.add_session_config_entry("session.use_env_allocators", "1")
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's Fail / InvalidGraph / InvalidProtobuf ...
        raise ConfigError(f"{path}: onnxruntime cannot load this graph ({_first_line(e)})") from None


def run_session(session, feeds: dict, name: str):
    """`session.run`, with what onnxruntime refuses while running (the arena cap included) as one
    line naming the graph."""
    try:
        return session.run(None, feeds)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{name}: onnxruntime failed running this graph ({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    """onnxruntime's message on one line; its reason comes last (after source paths), so a long
    one keeps its end."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else "..." + text[-300:]
