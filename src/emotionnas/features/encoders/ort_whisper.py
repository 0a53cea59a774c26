"""A Whisper encoder run by ONNX Runtime in its dynamic int8 scheme (`whisper-base@ort-int8`).

The float32 WhisperNet is exported to ONNX once per highest layer (blocks above it are not in
the graph) and quantised by `onnxruntime.quantization.quantize_dynamic` (MatMul weights int8 per
channel, activations per call); the graphs are cached under the model cache
(``$EMOTIONNAS_MODEL_CACHE/ort``), written atomically, keyed by the weights' checksum, the
highest layer, and the onnx / onnxruntime versions. The front end is the NumPy log-mel of
`features/numpy_frontend.py`; audio over 30 s is encoded in 30 s chunks, as WhisperEncoder does.

Each utterance is encoded alone, so its features never depend on the batch it came in. The
recognizer (both backends) and `export --onnx` run this same graph, so a model trained on these
features is served with exactly the numbers training saw. Its numbers are not torch int8's: the
difference to torch's int8 states is a few % of their norm in the lower layers and up to ~17 %
in the top ones (benchmarks/ort_encoder_speed.py); whether it is as good is decided by inner CV.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import warnings
from pathlib import Path

import numpy as np

from emotionnas.features import numpy_frontend as fe
from emotionnas.features.encoders.base import Encoder, EncoderError, check_wave

IMPL_VERSION = 1  # bump when the numbers this module produces change (part of the cache key)
OPSET = 17


@contextlib.contextmanager
def _quiet():
    """The tracer's and the quantiser's advice is for their developers, not for a user's terminal."""
    root = logging.getLogger()
    level = root.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


class OrtWhisperEncoder(Encoder):
    frame_rate = 50.0

    def __init__(self, float_encoder, threads: int | None = None):
        import torch
        try:
            import onnx  # noqa: F401 - the graph is exported once; onnxruntime runs it
            import onnxruntime  # noqa: F401
        except ImportError:
            raise EncoderError(f"{float_encoder.name}@ort-int8 needs onnx and onnxruntime: "
                               "pip install 'emotionnas[onnx]'") from None
        self.net = float_encoder.net.float().eval()   # the float32 weights the graphs are made from
        self.name = f"{float_encoder.name}@ort-int8"
        self.num_layers, self.dim = self.net.n_layers, self.net.dim
        self.identity = dict(float_encoder.identity)
        self.threads = int(threads or torch.get_num_threads())
        self._sessions: dict[int, object] = {}

    def num_frames(self, n_samples: int) -> int:
        n_mel = n_samples // fe.HOP_LENGTH
        full, rest = divmod(n_mel, fe.CHUNK_FRAMES)
        return full * (fe.CHUNK_FRAMES // 2) + math.ceil(rest / 2)

    def config_dict(self) -> dict:
        import onnxruntime as ort
        return {"name": self.name, "kind": "whisper", "impl_version": IMPL_VERSION, **self.identity,
                "num_layers": self.num_layers, "dim": self.dim, "n_mels": self.net.n_mels,
                "dtype": "ort-int8-per-channel", "runtime": f"onnxruntime {ort.__version__}",
                "frontend": f"numpy-logmel{self.net.n_mels}-nfft{fe.N_FFT}-hop{fe.HOP_LENGTH}-unpadded",
                "chunk_frames": fe.CHUNK_FRAMES, "hidden_states": "hf (last after final layer_norm)"}

    def onnx_graph(self, max_layer: int | None = None) -> Path:
        """The int8 graph of hidden states 0..max_layer (all when None), built once and cached."""
        import onnx
        import onnxruntime as ort
        top = self.num_layers if max_layer is None else max(0, min(int(max_layer), self.num_layers))
        key = hashlib.sha256(repr((self.identity, top, OPSET, IMPL_VERSION, onnx.__version__,
                                   ort.__version__)).encode()).hexdigest()[:16]
        from emotionnas.features.encoders.assets import model_cache_dir
        path = model_cache_dir() / "ort" / f"{self.name.replace('/', '_')}-L{top}-{key}.onnx"
        if not path.exists():
            self._build(path, top)
        return path

    def _build(self, path: Path, top: int) -> None:
        import os
        import tempfile

        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        net = self.net

        class Graph(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, mel):
                return self.net(mel, None, top)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp, _quiet():
                float_path, int8_path = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
                torch.onnx.export(Graph().eval(), (torch.zeros(1, net.n_mels, 300),), str(float_path),
                                  input_names=["mel"], output_names=["states"],
                                  dynamic_axes={"mel": {2: "frames"}, "states": {2: "T"}},
                                  opset_version=OPSET, dynamo=False)
                quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul"], per_channel=True)
                os.replace(int8_path, path)  # atomic: a reader sees the whole graph or none
        except OSError as e:
            raise EncoderError(f"{path}: cannot write the ONNX Runtime encoder graph ({e}); point "
                               "EMOTIONNAS_MODEL_CACHE to a writable folder") from None

    def _session(self, max_layer: int):
        if max_layer not in self._sessions:
            import onnxruntime as ort
            opts = ort.SessionOptions()
            # one thread per call: short utterances gain nothing from intra-op threads (measured: 2 threads
            # 36 s, 1 thread 21 s for EmoDB's deep stream); encode_many runs `threads` utterances at once
            opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
            self._sessions[max_layer] = ort.InferenceSession(str(self.onnx_graph(max_layer)), opts,
                                                             providers=["CPUExecutionProvider"])
        return self._sessions[max_layer]

    def encode(self, wave: np.ndarray) -> np.ndarray:
        return self.encode_upto(wave, self.num_layers)

    def encode_many(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """`encode` of each wave, `threads` of them at a time (ONNX Runtime releases the GIL); each
        utterance is still encoded alone, so the numbers are `encode`'s."""
        if self.threads <= 1 or len(waves) <= 1:
            return [self.encode(w) for w in waves]
        from concurrent.futures import ThreadPoolExecutor
        self._session(self.num_layers)  # built once, before the threads share it
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(self.encode, waves))

    def encode_upto(self, wave: np.ndarray, max_layer: int) -> np.ndarray:
        """(max_layer + 1, T, D) float32 hidden states; the blocks above max_layer are not run."""
        top = max(0, min(int(max_layer), self.num_layers))
        mel = fe.log_mel(check_wave(wave), self.net.n_mels)
        if mel.shape[1] < 1:
            raise EncoderError("<wave>: no mel frame")
        sess = self._session(top)
        parts = [sess.run(None, {"mel": mel[None, :, s:s + fe.CHUNK_FRAMES]})[0][:, 0]
                 for s in range(0, mel.shape[1], fe.CHUNK_FRAMES)]
        return np.ascontiguousarray(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1),
                                    dtype=np.float32)
