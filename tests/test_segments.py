"""Long audio by voice activity: real EmoDB speech with pauses -> one row per spoken stretch,
onsets within 0.3 s, pauses unlabelled; segments cut from a stream equal the same samples in
memory; output formats (csv table, jsonl, Hugging Face shape); list-file inputs; batch API."""
import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf

from emotionnas.data.audio import load_audio, stream_audio
from emotionnas.data.vad import SileroVAD, VADSettings, speech_segments
from emotionnas.recognizer.outputs import Writer, expand_inputs
from emotionnas.recognizer.segments import cut, predict_segments

pytest.importorskip("silero_vad")


@pytest.fixture(scope="module")
def minute(tmp_path_factory, request):
    """About a minute of real speech: 16 EmoDB utterances of 10 speakers separated by 1-2.5 s
    pauses of low noise (-70 dBFS). Returns (path, [(onset, offset)] of the utterances)."""
    from conftest import EMODB
    files = sorted((EMODB / "wav").glob("*.wav"))[3::27][:16]
    if len(files) < 16:
        pytest.skip(f"EmoDB not found at {EMODB}")
    rng = np.random.default_rng(1)
    parts, truth, t = [], [], 0.0
    for f in files:
        gap = rng.uniform(1.0, 2.5)
        parts.append((3e-4 * rng.standard_normal(int(gap * 16000))).astype(np.float32))
        t += gap
        w = load_audio(f)
        parts.append(w)
        truth.append((t, t + len(w) / 16000))
        t += len(w) / 16000
    parts.append(np.zeros(16000, np.float32))
    path = tmp_path_factory.mktemp("minute") / "minute.wav"
    sf.write(str(path), np.concatenate(parts), 16000, subtype="PCM_16")
    return path, truth


def test_vad_finds_every_utterance_and_no_pause(minute):
    path, truth = minute
    spans = speech_segments(SileroVAD().frame_probs(stream_audio(path)))
    for onset, offset in truth:  # every utterance starts a segment within 0.3 s
        assert min(abs(a - onset) for a, _ in spans) < 0.3, (onset, spans)
    for a, b in spans:  # every segment lies inside an utterance (+- 0.3 s): pauses are never a segment
        assert any(on - 0.3 <= a and b <= off + 0.3 for on, off in truth), (a, b)
    assert len(truth) <= len(spans) <= len(truth) + 3  # a long utterance may hold a pause of its own
    assert all(b - a <= VADSettings().max_segment for a, b in spans)


def test_streamed_cut_equals_the_samples_in_memory(minute):
    path, _ = minute
    wave = load_audio(path)
    spans = [(0.5, 2.0), (2.0, 2.01), (10.0, 40.5), (60.0, 1e9)]
    got = list(cut(stream_audio(path), spans))
    assert [g[0] for g in got] == [0.5, 2.0, 10.0, 60.0]
    for (a, b, piece), (sa, sb) in zip(got[:3], spans[:3]):
        assert np.array_equal(piece, wave[int(round(sa * 16000)):int(round(sb * 16000))])
    assert got[-1][1] == pytest.approx(len(wave) / 16000, abs=1e-3)  # the last span stops at the end


@pytest.mark.slow
def test_segments_table_and_formats(tiny_run, minute, tmp_path):
    from emotionnas.recognizer import Recognizer
    rec = Recognizer.load(tiny_run[1])
    path, truth = minute
    rows = predict_segments(rec, path, "vad")
    assert len(rows) >= len(truth) and all(r["speech"] and r["label"] in rec.labels for r in rows)
    assert all(r["score"] == max(r["probs"].values()) for r in rows)
    buf = io.StringIO()
    w = Writer("csv", rec.labels, buf)
    for r in rows:
        w.row(str(path), r, r["start"], r["end"])
    table = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert list(table[0]) == ["file", "start", "end", "label", "score", *rec.labels, "error"]
    assert [float(t["start"]) for t in table] == [r["start"] for r in rows]
    fixed = predict_segments(rec, path, "fixed", window=1.0, hop=0.5)
    assert [r["start"] for r in fixed[:3]] == [0.0, 0.5, 1.0]
    for r in fixed:  # 1 s windows wholly inside a pause get no emotion; those inside an utterance get one
        if not any(on < r["end"] and r["start"] < off for on, off in truth):
            assert r["speech"] is False and r["label"] is None, r
        if any(on <= r["start"] and r["end"] <= off for on, off in truth):
            assert r["speech"] is True and r["label"] in rec.labels, r
    hf = io.StringIO()
    Writer("hf", rec.labels, hf).row("x", rec.predict(path))
    pairs = json.loads(hf.getvalue())["predictions"]
    assert [p["label"] for p in pairs] == sorted(rec.labels, key=lambda lab: -rec.predict(path)["probs"][lab])


@pytest.mark.slow
def test_batch_api_and_list_inputs(tiny_run, demo_root, tmp_path):
    from emotionnas.recognizer import load
    rec = load(tiny_run[1])
    wavs = sorted((demo_root / "wav").glob("*.wav"))[:3]
    lst = tmp_path / "wav.scp"
    lst.write_text("# id path\n" + "".join(f"utt{i} {w}\n" for i, w in enumerate(wavs)) + "bad /nonexistent.wav\n")
    items = expand_inputs([lst])
    assert [uid for uid, _ in items] == ["utt0", "utt1", "utt2", "bad"]
    wave, _ = sf.read(str(wavs[1]), dtype="int16")
    out = rec.predict_batch([wavs[0], wave, "/nonexistent.wav"], top_k=2)
    assert out[0]["input"] == str(wavs[0]) and out[0]["label"] == rec.predict(wavs[0])["label"]
    assert out[1]["probs"] == rec.predict(wavs[1])["probs"]
    assert len(out[0]["top_k"]) == 2 and out[0]["top_k"][0]["label"] == out[0]["label"]
    assert "error" in out[2] and "/nonexistent.wav" in out[2]["error"]
    probs, errors = rec.predict_proba_batch([wavs[0], "/nonexistent.wav"])
    assert np.isnan(probs[1]).all() and np.isclose(probs[0].sum(), 1, atol=1e-5) and len(errors) == 1


@pytest.mark.slow
def test_embeddings_are_what_the_members_classify(tiny_run, demo_root, tmp_path, capsys):
    import torch

    from emotionnas.cli import main
    from emotionnas.recognizer import load
    rec = load(tiny_run[1])
    wavs = sorted((demo_root / "wav").glob("*.wav"))[:2]
    out = tmp_path / "emb.npy"
    assert main(["predict", "--model", str(tiny_run[1]), *map(str, wavs), "--embeddings", str(out)]) == 0
    emb = np.load(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["rows"] == [str(w) for w in wavs] and len(meta["members"]) == len(rec.spec.members)
    assert emb.shape[0] == 2 and not np.allclose(emb[0], emb[1])
    np.testing.assert_array_equal(emb[0], rec.embeddings(rec.load_wave(wavs[0])))
    net = rec.model.nets[0]  # the first member's head applied to its slice gives its logits
    spec, deep = rec.features(rec.load_wave(wavs[0]))
    from emotionnas.features.inputs import model_inputs
    inputs = model_inputs(rec.model.specs[0], spec, deep)
    head = getattr(net, "head", None) or net.classifier
    with torch.no_grad():
        vec = net.embed(*inputs)
        np.testing.assert_allclose(head(vec).numpy(), net(*inputs).numpy(), atol=1e-6)
    assert np.allclose(emb[0, :vec.shape[1]], vec.numpy()[0])
