"""The recognizer: a model folder and what serves it.

    folder.py          the model folder (file names, bounded reading of model.json and the
                       weights header) and the verbs every backend shares
    torch_backend.py   `Recognizer`: the networks exactly as trained (torch)
    onnx_backend.py    `OnnxRecognizer`: the same on onnxruntime, no torch
    export.py          a finished run -> a model folder (model.safetensors, model.json, card)
    onnx_export.py     a model folder -> ONNX graphs, checked against torch
    evaluate.py        a model folder on another corpus (through `predict_batch`)
    serve.py           the HTTP service and its page (page.html, page.js, page.css)

    from emotionnas.recognizer import load
    rec = load("model/")                    # torch
    rec = load("model/", backend="onnx")    # onnxruntime, torch never imported
    rec.predict("utt.wav")                  # {"label", "probs", "speech"}
    rec.predict_batch(["a.wav", wave])      # one result per input

Importing this package imports no torch.
"""
from emotionnas.errors import ConfigError
from emotionnas.recognizer.folder import MODEL_JSON, MODEL_WEIGHTS, BaseRecognizer, read_model_spec
from emotionnas.recognizer.torch_backend import Recognizer

BACKENDS = ("torch", "onnx")


def load(model_dir, backend: str = "torch", encoder=None, threads: int | None = None) -> BaseRecognizer:
    """The recognizer of a model folder on `backend` ("torch" or "onnx"); `threads`: onnxruntime's
    threads (torch's are the process's: `torch.set_num_threads`)."""
    if backend == "onnx":
        from emotionnas.recognizer.onnx_backend import OnnxRecognizer
        return OnnxRecognizer.load(model_dir, threads)
    if backend != "torch":
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return Recognizer.load(model_dir, encoder)


__all__ = ["BACKENDS", "MODEL_JSON", "MODEL_WEIGHTS", "BaseRecognizer", "Recognizer", "load", "read_model_spec"]
