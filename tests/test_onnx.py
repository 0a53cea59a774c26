"""ONNX export: onnxruntime gives the torch probabilities (1e-4) on real utterances, and the
ONNX backend runs without importing torch."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # tiny_run: a real run_crossval

from emotionnas.errors import ConfigError  # noqa: E402
from emotionnas.recognizer.onnx_export import export_onnx  # noqa: E402
from emotionnas.recognizer import Recognizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_hostile_input import _exported_meta  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_run):
    """The demo run's exported ensemble, and a hand-made two-member ensemble holding every kind
    of searched part (DARTS cells + recipe cell fused by ISM; GRU with mean+std pooling)."""
    tmp = tmp_path_factory.mktemp("onnx")
    demo = tmp / "demo"
    shutil.copytree(tiny_run[1], demo)
    multi = tmp / "multi"
    _exported_meta(multi)
    for m in (demo, multi):
        info = export_onnx(m)
        n = len(Recognizer.load(m).spec.members)
        assert [x["file"] for x in info["members"]] == [f"onnx/member{i}.onnx" for i in range(n)]
        assert {f"member{i}" for i in range(n)} <= set(info["max_error"]) and n >= 1
        assert max(info["max_error"].values()) < 1e-4
    return demo, multi


def _real_waves(demo_root, n=4):
    emodb = Path(__file__).resolve().parents[1].parent / "shared/data/emodb/wav"
    files = sorted(emodb.glob("*.wav"))[:n] if emodb.is_dir() else sorted((demo_root / "wav").glob("*.wav"))[:n]
    assert len(files) == n, files
    return files


def test_onnx_equals_torch_on_real_utterances(models, demo_root):
    for model in models:
        t, o = Recognizer.load(model), Recognizer.load(model, backend="onnx")
        for f in _real_waves(demo_root):
            wave = t.load_wave(f)
            p = o.predict_proba(wave)
            assert p.shape == (len(t.labels),) and abs(p.sum() - 1) < 1e-5
            np.testing.assert_allclose(p, t.predict_proba(wave), atol=1e-4)


def test_onnx_chunks_audio_longer_than_30_s_like_torch(models, demo_root):
    model = models[1]
    t, o = Recognizer.load(model), Recognizer.load(model, backend="onnx")
    waves = [t.load_wave(f) for f in sorted((demo_root / "wav").glob("*.wav"))]
    long = np.concatenate(waves * 3)[: 16000 * 33]
    np.testing.assert_allclose(o.predict_proba(long), t.predict_proba(long), atol=1e-4)


def test_onnx_backend_never_imports_torch(models, demo_root):
    wav = sorted((demo_root / "wav").glob("*.wav"))[0]
    code = ("import sys, json\nfrom emotionnas.recognizer import Recognizer\n"
            f"r = Recognizer.load({str(models[0])!r}, backend='onnx')\n"
            f"out = r.predict({str(wav)!r})\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'label': out['label']}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["torch"] is False and res["label"] == Recognizer.load(models[0]).predict(wav)["label"]


def test_hostile_onnx_json_is_refused(models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(models[1], bad)
    info = json.loads((bad / "onnx.json").read_text())
    info["members"][0]["file"] = "../../etc/passwd"
    (bad / "onnx.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="onnx.json.*members") as e:
        Recognizer.load(bad, backend="onnx")
    assert "\n" not in str(e.value)


def test_a_graph_changed_after_export_is_refused(models, tmp_path):
    """onnx.json lists every graph's sha256; a graph that still parses but is not what export wrote
    (an initializer edited) is refused in one line naming it."""
    import onnx
    from onnx import numpy_helper
    changed = tmp_path / "changed"
    shutil.copytree(models[0], changed)
    info = json.loads((changed / "onnx.json").read_text())
    assert all(len(e["sha256"]) == 64 for e in [info.get("encoder") or {"sha256": "0" * 64}, *info["members"]])
    graph = onnx.load(str(changed / "onnx" / "member0.onnx"))
    init = graph.graph.initializer[0]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1, init.name))
    onnx.save(graph, str(changed / "onnx" / "member0.onnx"))
    with pytest.raises(ConfigError, match="member0.onnx.*sha256") as e:
        Recognizer.load(changed, backend="onnx")
    assert "\n" not in str(e.value)


def test_int8_encoder_is_quantised_by_onnxruntime_and_stays_close(tiny_run, tmp_path, demo_root):
    """An int8 encoder (`<name>@int8`) is exported from its float32 weights and quantised by
    onnxruntime (per channel, as torch's): a real int8 graph (MatMulInteger), smaller than the
    float one, whose probabilities stay close to torch's int8 on real utterances (not equal:
    the two libraries quantise activations differently)."""
    model = tmp_path / "int8"
    shutil.copytree(tiny_run[1], model)
    spec = json.loads((model / "model.json").read_text())
    spec["encoder"] = spec["encoder"] + "@int8"
    (model / "model.json").write_text(json.dumps(spec))
    info = export_onnx(model)
    assert info["encoder"]["dtype"] == "int8"
    import onnx
    ops = {n.op_type for n in onnx.load(str(model / "onnx/encoder.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops and not (model / "onnx/encoder.float.onnx").exists()
    from emotionnas.recognizer import load
    t, o = Recognizer.load(model), load(model, backend="onnx", threads=1)
    assert t.encoder.quantized
    diffs = []
    for f in _real_waves(demo_root, 6):
        wave = t.load_wave(f)
        diffs.append(float(np.abs(o.predict_proba(wave) - t.predict_proba(wave)).max()))
    assert 0 < max(diffs) < 0.08, diffs
