"""`emotionnas export RUN --out M --onnx`: the recognizer as ONNX graphs (torch needed only here).

Writes into M/onnx/
    encoder.onnx      Whisper log-mel (1, n_mels, frames) -> hidden states (L'+1, 1, T, D) up to the
                      highest layer a member reads; frames dynamic (<= 3000, one 30 s chunk)
    member<i>.onnx    member i after feature extraction: its inputs per `candidate.streams`
                      (spectrogram (1, 1, F, T); deep (1, L', T, D) with T dynamic, lengths (1,))
                      -> logits (1, n_classes)
and `onnx.json` (which file is which, the encoder's layer count). Every graph is checked at
export: onnxruntime and torch must agree to 1e-4 on an input of another length than the one
traced; a graph that does not is an error naming the member, never a silently wrong file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from emotionnas.errors import ConfigError
from emotionnas.features.numpy_frontend import log_mel
from emotionnas.utils.io import atomic_write_json, file_sha256

ONNX_DIR, ONNX_JSON = "onnx", "onnx.json"


class _EncoderGraph(torch.nn.Module):
    def __init__(self, net, max_layer):
        super().__init__()
        self.net, self.max_layer = net, max_layer

    def forward(self, mel):
        return self.net(mel, None, self.max_layer)


def _check(path: Path, torch_fn, inputs: dict, what: str, atol: float = 1e-4, relative: bool = False) -> float:
    """Max abs difference, bounded by `atol` x max(1, largest value); `relative`: the difference's
    norm over the reference's norm instead (two int8 schemes differ everywhere a little)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    with torch.no_grad():
        want = torch_fn(*inputs.values()).numpy()
    if relative:
        err = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))
        bound = atol
    else:
        err, bound = float(np.abs(got - want).max()), atol * max(1.0, float(np.abs(want).max()))
    if not np.isfinite(err) or err > bound:
        raise ConfigError(f"{what}: the ONNX graph differs from torch by {err:.2e}; not exported faithfully")
    return err


def export_member(net, spec, dims, spec_size: tuple[int, int], path: Path, opset: int, gen, candidate=None):
    """One network as an ONNX graph at `path`, checked against torch on other random inputs.
    `spec`: its InputSpec (streams, layers). -> (input names, max abs error)."""
    from emotionnas.space.families import family
    for name in (candidate.deep, candidate.spectrogram) if candidate is not None else ():
        if name != "none" and not family(name).onnx:
            raise ConfigError(f"family {name!r} has no ONNX export")
    net.eval()
    for module in net.modules():
        if hasattr(module, "use_export_graph"):
            module.use_export_graph()
    names, example, check, axes = [], [], [], {}
    if "spectrogram" in spec.streams:
        f, t = spec_size
        names.append("spectrogram")
        example.append(torch.randn(1, 1, f, t, generator=gen))
        check.append(torch.randn(1, 1, f, t, generator=gen))
    if "deep" in spec.streams:
        n_layers = dims.deep_layers_total if spec.layers is None else len(spec.layers)
        names += ["deep", "lengths"]
        example += [torch.randn(1, n_layers, 17, dims.deep_dim, generator=gen), torch.tensor([17])]
        check += [torch.randn(1, n_layers, 9, dims.deep_dim, generator=gen), torch.tensor([9])]
        axes["deep"] = {2: "T"}
    try:
        torch.onnx.export(net, tuple(example), str(path), input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    except Exception as e:  # noqa: BLE001 - said in one line
        raise ConfigError(f"cannot be exported to ONNX ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    return names, _check(path, net, dict(zip(names, check)), str(path.name))


def _export_encoder(rec, path: Path, opset: int, gen) -> tuple[dict, float]:
    """encoder.onnx up to the highest layer a member reads. An int8 encoder (`whisper-base@int8`:
    torch's dynamic int8 linear layers) is exported from its float32 weights and quantised by
    onnxruntime's own dynamic int8 scheme (weights int8 per channel, activations per call), so its
    numbers are close to torch's, not equal: the check bounds the relative difference (norm of the
    difference over the norm of torch's states) at 10 % (measured on EmoDB speech up to layer 3:
    5-6 %; each int8 scheme is 2-6 % from float32), float32 at 1e-4 of the largest value; onnx.json
    records it."""
    enc = rec.encoder
    if hasattr(enc, "onnx_graph"):  # ONNX Runtime's int8 encoder (`@ort-int8`): its own graph, exactly
        import shutil
        shutil.copyfile(enc.onnx_graph(rec.max_layer()), path)
        wave = torch.randn(16000 * 2, generator=gen).numpy() * 0.1
        want = enc.encode_upto(wave, enc.num_layers if rec.max_layer() is None else rec.max_layer())
        mel = torch.from_numpy(log_mel(wave, enc.net.n_mels)[None])
        err = _check(path, lambda _: torch.from_numpy(want[:, None]), {"mel": mel}, "encoder", atol=1e-6)
        return {"file": f"{ONNX_DIR}/encoder.onnx", "n_mels": enc.net.n_mels, "layers": want.shape[0],
                "dtype": "ort-int8"}, err
    if not hasattr(enc, "net"):
        raise ConfigError(f"{rec.spec.encoder}: only Whisper encoders are exported to ONNX")
    quantized = bool(getattr(enc, "quantized", False))
    if quantized:
        from emotionnas.features.encoder_ref import EncoderRef
        from emotionnas.features.encoders import create_encoder
        net = create_encoder(EncoderRef.parse(rec.spec.encoder).float_name).net
    else:
        net = enc.net
    graph = _EncoderGraph(net.float().eval(), rec.max_layer())
    mel = torch.randn(1, net.n_mels, 300, generator=gen)
    target = path.with_suffix(".float.onnx") if quantized else path
    torch.onnx.export(graph, (mel,), str(target), input_names=["mel"], output_names=["states"],
                      dynamic_axes={"mel": {2: "frames"}, "states": {2: "T"}}, opset_version=opset, dynamo=False)
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(str(target), str(path), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         per_channel=True)
        target.unlink()
    want = _EncoderGraph(enc.net, rec.max_layer())  # what training computed (int8: torch's int8 layers)
    err = _check(path, want, {"mel": torch.randn(1, net.n_mels, 173, generator=gen)}, "encoder",
                 atol=0.10 if quantized else 1e-4, relative=quantized)
    layers = (rec.max_layer() if rec.max_layer() is not None else net.n_layers) + 1
    return {"file": f"{ONNX_DIR}/encoder.onnx", "n_mels": net.n_mels, "layers": layers,
            "dtype": "int8" if quantized else "float32"}, err


def describe_errors(info: dict) -> str:
    """One line of each graph's check: the int8 encoder's is a norm ratio, the others a max."""
    rel = {"encoder"} if info.get("encoder", {}).get("dtype") == "int8" else set()
    return ", ".join(f"{k} ({'relative' if k in rel else 'max'} |onnx - torch| {v:.1e})"
                     for k, v in info["max_error"].items())


def export_onnx(model_dir, opset: int = 17) -> dict:
    """Write the ONNX graphs of the model folder `model_dir`; returns what onnx.json holds."""
    import warnings

    from emotionnas.recognizer.torch_backend import Recognizer
    rec = Recognizer.load(model_dir)
    out = Path(model_dir) / ONNX_DIR
    out.mkdir(parents=True, exist_ok=True)
    info: dict = {"opset": opset, "members": [], "max_error": {}}
    gen = torch.Generator().manual_seed(0)
    with warnings.catch_warnings(), torch.jit.optimized_execution(False):
        warnings.simplefilter("ignore")
        if rec.uses_deep():
            info["encoder"], info["max_error"]["encoder"] = _export_encoder(rec, out / "encoder.onnx", opset, gen)
        for i, (net, spec, m) in enumerate(zip(rec.model.nets, rec.model.specs, rec.spec.members)):
            path = out / f"member{i}.onnx"
            try:
                names, err = export_member(net, spec, rec.spec.dims, (rec.spec_cfg.out_freq, rec.spec_cfg.out_time),
                                           path, opset, gen, m.candidate)
            except ConfigError as e:
                raise ConfigError(f"member {i} ({m.name}): {e}") from None
            info["max_error"][f"member{i}"] = err
            info["members"].append({"file": f"{ONNX_DIR}/member{i}.onnx", "inputs": names})
    for entry in [info.get("encoder"), *info["members"]]:  # what the backend checks before using a graph
        if entry:
            entry["sha256"] = file_sha256(Path(model_dir) / entry["file"])
    atomic_write_json(Path(model_dir) / ONNX_JSON, info)
    return info
