"""Inputs that are not files, hostile ONNX graph files, and `--config` names (issue 31, items 4, 5, 7).

FIFOs, devices, sockets and folders where a file is expected are refused from os.stat before
anything opens them: `predict` gives each an error row and finishes; corpus readers list them;
manifest rows must lie in the manifest's folder. ONNX graphs are checked (size, parse, sizes the
graph's constants ask for) before onnxruntime sees them, and sessions allocate from a capped arena.
A preset name wins over a folder of that name.

Every FIFO here is watched (`FifoWatch`): code that wrongly opens one for reading gets EOF instead of
blocking the test, and the test fails on `opened`.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from emotionnas.cli import _config_file_or_preset, main
from emotionnas.config import RunConfig
from emotionnas.data.audio import load_audio
from emotionnas.data.corpora import read_corpus
from emotionnas.errors import AudioError, ConfigError, CorpusError, EmotionNASError
from emotionnas.recognizer.outputs import _read_list, expand_inputs

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_wav  # noqa: E402


class FifoWatch:
    """A real FIFO at `path`, and a thread that notices a reader: it keeps trying to open the write
    end without blocking (ENXIO while nobody reads) and, once that succeeds, closes it at once, so
    a reader that should never have opened the FIFO sees EOF instead of blocking for ever."""

    def __init__(self, path):
        self.path, self.opened, self._stop = Path(path), False, threading.Event()
        os.mkfifo(self.path)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.wait(0.01):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            self.opened = True
            os.close(fd)

    def stop(self):
        self._stop.set()
        self._thread.join()


@pytest.fixture
def fifo(tmp_path):
    """fifo(path) -> a watched FIFO; every one is stopped and checked never opened at the end."""
    made = []

    def make(path):
        made.append(FifoWatch(path))
        return made[-1].path
    yield make
    for w in made:
        w.stop()
    assert [str(w.path) for w in made if w.opened] == []


def _speech(path, seconds=1.0, seed=0):
    t = np.arange(int(16000 * seconds)) / 16000
    wave = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return write_wav(path, wave + np.random.default_rng(seed).normal(0, 0.01, len(t)))


def _socket(folder: Path, name: str) -> socket.socket:
    """A bound unix socket `folder/name` (bound by a relative name: socket paths are short)."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.bind(name)
    finally:
        os.chdir(here)
    return s


# --- audio inputs ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["FIFO", "character device", "socket", "directory", "block device"])
def test_audio_that_is_not_a_regular_file_is_refused_from_stat(tmp_path, fifo, kind):
    sock = None
    if kind == "FIFO":
        path = fifo(tmp_path / "x.wav")
    elif kind == "character device":
        path = Path("/dev/zero")  # would never end
    elif kind == "socket":
        sock, path = _socket(tmp_path, "s.wav"), tmp_path / "s.wav"
    elif kind == "directory":
        (path := tmp_path / "d.wav").mkdir()
    else:
        path = next((p for p in (Path("/dev/loop0"), Path("/dev/sda"), Path("/dev/vda")) if p.is_block_device()), None)
        if path is None:
            pytest.skip("no block device on this machine")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert str(e.value) == f"{path}: not a regular file ({kind})"
    if sock is not None:
        sock.close()


def test_folders_and_list_files_keep_fifos_as_items_and_never_open_them(tmp_path, fifo):
    folder = tmp_path / "in"
    _speech(folder / "a.wav")
    x = fifo(folder / "x.wav")
    _speech(folder / "sub.wav" / "b.wav")  # a folder with an audio name is walked into, not an item
    listed = fifo(tmp_path / "listed.flac")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# comment\nu1 {listed.name}\n/dev/zero\n")
    fifo_list = fifo(tmp_path / "fifo.txt")
    items = expand_inputs([folder, lst, fifo_list])
    assert items == [(str(folder / "a.wav"), folder / "a.wav"), (str(folder / "sub.wav" / "b.wav"),
                     folder / "sub.wav" / "b.wav"), (str(x), x), ("u1", listed), ("/dev/zero", Path("/dev/zero")),
                     (str(fifo_list), fifo_list)]
    with pytest.raises(EmotionNASError, match=f"^{fifo_list}: list file not a regular file \\(FIFO\\)$"):
        _read_list(fifo_list)


def test_predict_lists_each_input_that_is_not_a_file_and_finishes(tmp_path, fifo, capsys):
    from test_hostile_input import _exported_meta
    model = tmp_path / "model"
    _exported_meta(model)
    folder = tmp_path / "in"
    _speech(folder / "a.wav")
    x = fifo(folder / "x.wav")
    sock = _socket(folder, "s.wav")
    given = fifo(tmp_path / "given.wav")
    listed = fifo(tmp_path / "listed.wav")
    (tmp_path / "list.txt").write_text(f"{listed.name}\n/dev/zero\n{_speech(tmp_path / 'b.wav', seed=1).name}\n")
    fifo_list = fifo(tmp_path / "more.txt")
    code = main(["predict", "--model", str(model), str(folder), str(given), str(tmp_path / "list.txt"),
                 str(fifo_list)])
    out, err = capsys.readouterr()
    sock.close()
    assert code == 0
    rows = [json.loads(r) for r in out.splitlines()]  # one row per input, in order: an error row for each refusal
    assert [(r["file"], r.get("error")) for r in rows] == [
        (str(folder / "a.wav"), None), (str(folder / "s.wav"), f"{folder / 's.wav'}: not a regular file (socket)"),
        (str(x), f"{x}: not a regular file (FIFO)"), (str(given), f"{given}: not a regular file (FIFO)"),
        (listed.name, f"{listed}: not a regular file (FIFO)"),
        ("/dev/zero", "/dev/zero: not a regular file (character device)"), ("b.wav", None),
        (str(fifo_list), f"{fifo_list}: not a regular file (FIFO)")]
    assert err.splitlines() == [f"failed: {r['error']}" for r in rows if r.get("error")]


# --- corpora --------------------------------------------------------------------------------

def test_manifest_rows_must_be_regular_files_inside_its_folder(tmp_path, fifo):
    corpus = tmp_path / "corpus"
    _speech(corpus / "a.wav")
    _speech(corpus / "deep" / "b.wav", seed=1)
    outside = _speech(tmp_path / "secret.wav", seed=2)
    (corpus / "link.wav").symlink_to(outside)  # a symlink leading out is outside too
    fifo(corpus / "pipe.wav")
    (corpus / "dir.wav").mkdir()
    manifest = corpus / "manifest.csv"
    manifest.write_text("path,label,speaker\na.wav,sad,s1\n" f"{corpus / 'deep' / 'b.wav'},sad,s1\n"
                        "../secret.wav,sad,s2\nlink.wav,sad,s2\npipe.wav,sad,s3\ndir.wav,sad,s3\n/dev/null,sad,s4\n")
    table = read_corpus("manifest", corpus)
    assert [Path(u.path).name for u in table.utterances] == ["a.wav", "b.wav"]
    where = f"outside the manifest's folder {corpus.resolve()} (reader option allow_outside=true permits it)"
    assert table.errors == [f"{corpus / '../secret.wav'}: listed in manifest.csv line 4 but {where}",
                            f"{corpus / 'link.wav'}: listed in manifest.csv line 5 but {where}",
                            f"{corpus / 'pipe.wav'}: listed in manifest.csv line 6 but not a regular file (FIFO)",
                            f"{corpus / 'dir.wav'}: listed in manifest.csv line 7 but not a regular file (directory)",
                            f"/dev/null: listed in manifest.csv line 8 but {where}"]
    allowed = read_corpus("manifest", corpus, allow_outside=True)
    assert sorted(Path(u.path).name for u in allowed.utterances) == ["a.wav", "b.wav", "secret.wav", "secret.wav"]
    assert allowed.errors[-1] == "/dev/null: listed in manifest.csv line 8 but not a regular file (character device)"
    with pytest.raises(CorpusError, match="allow_outside: expected true or false"):
        read_corpus("manifest", corpus, allow_outside="yes")


def test_allow_outside_is_the_reader_option_on_the_command_line(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    _speech(corpus / "a.wav")
    _speech(tmp_path / "b.wav", seed=1)
    (corpus / "m.csv").write_text("path,label,speaker\na.wav,sad,s1\n../b.wav,calm,s2\n")
    assert main(["corpus", "manifest", str(corpus / "m.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["utterances"] == 1
    assert main(["corpus", "manifest", str(corpus / "m.csv"), "--json", "--option", "allow_outside=true"]) == 0
    assert json.loads(capsys.readouterr().out)["utterances"] == 2


def test_manifest_and_corpus_files_that_are_not_regular_files(tmp_path, fifo):
    pipe = fifo(tmp_path / "pipe.csv")
    with pytest.raises(CorpusError, match=f"^{pipe}: cannot read manifest: not a regular file \\(FIFO\\)$"):
        read_corpus("manifest", pipe)
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo(folder / "manifest.csv")
    with pytest.raises(CorpusError, match="manifest.csv: cannot read manifest: not a regular file \\(FIFO\\)$"):
        read_corpus("manifest", folder)
    with pytest.raises(CorpusError, match="^/dev/zero: cannot read manifest: not a regular file \\(character"):
        read_corpus("manifest", "/dev/zero")
    emodb = tmp_path / "emodb"
    _speech(emodb / "wav" / "03a01Fa.wav")
    fifo(emodb / "wav" / "03a02Wb.wav")  # a corpus folder's FIFO is listed, not skipped silently, not read
    table = read_corpus("emodb", emodb)
    assert len(table.utterances) == 1
    assert table.errors == [f"{(emodb / 'wav' / '03a02Wb.wav').resolve()}: not a regular file (FIFO)"]


def test_corpus_label_files_that_are_not_regular_files_are_listed_or_refused(tmp_path, fifo):
    """IEMOCAP's EmoEvaluation files and labelled wavs, MSP-IMPROV's Evaluation.txt and CREMA-D's
    VideoDemographics.csv are read from os.stat first: a FIFO label file hung the IEMOCAP reader."""
    from emotionnas.data.corpora.cremad import speaker_sexes
    from test_corpora import iemocap_tree, msp_tree
    root = iemocap_tree(tmp_path / "iemocap").resolve()
    wav = root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav"
    wav.unlink()
    fifo(wav)
    labels = fifo(root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro09.txt")
    table = read_corpus("iemocap", root)
    assert table.errors == [f"{wav}: labelled in Ses01F_impro01.txt but the wav file is not a regular file (FIFO)",
                            f"{labels}: label file not a regular file (FIFO)"]
    assert len(table.utterances) == 3  # the other improvised utterances (4 in the tree) are kept
    msp = msp_tree(tmp_path / "msp").resolve()
    (msp / "Evaluation.txt").unlink()
    fifo(msp / "Evaluation.txt")
    with pytest.raises(CorpusError, match=f"^{msp / 'Evaluation.txt'}: cannot read the MSP-IMPROV labels: "
                                          "not a regular file \\(FIFO\\)$"):
        read_corpus("msp-improv", msp)
    (cremad := tmp_path / "cremad").mkdir()
    fifo(cremad / "VideoDemographics.csv")
    assert speaker_sexes(cremad) == {}


# --- ONNX graph files -----------------------------------------------------------------------

def _onnx_model(tmp_path) -> Path:
    """A valid model folder whose onnx.json names two member graphs (to be replaced by the test)."""
    from test_hostile_input import _exported_meta
    model = tmp_path / "model"
    _exported_meta(model)
    (model / "onnx").mkdir()
    (model / "onnx.json").write_text(json.dumps({"members": [{"file": f"onnx/member{i}.onnx"} for i in range(2)]}))
    return model


def _graph(nodes, initializers=(), inputs=(), output="y"):
    from onnx import TensorProto, helper
    g = helper.make_graph(nodes, "g", list(inputs), [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                          initializer=list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _constant_of_shape(shape):
    """A graph whose ConstantOfShape fills a float32 tensor of `shape` (a constant of the graph)."""
    from onnx import TensorProto, helper, numpy_helper
    init = numpy_helper.from_array(np.array(shape, dtype=np.int64), name="shape")
    node = helper.make_node("ConstantOfShape", ["shape"], ["y"], name="fill",
                            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    return _graph([node], [init])


def _in_a_loop_body(shape):
    """The same ConstantOfShape inside a Loop body, its shape an initializer of the outer graph."""
    from onnx import TensorProto, helper, numpy_helper
    body = helper.make_graph([helper.make_node("ConstantOfShape", ["shape"], ["big"],
                                               value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
                              helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("big", TensorProto.FLOAT, None)])
    trip = numpy_helper.from_array(np.array(1, np.int64), "trip")
    cond = numpy_helper.from_array(np.array(True), "cond")
    shape_init = numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape")
    loop = helper.make_node("Loop", ["trip", "cond"], ["y"], body=body)
    return _graph([loop], [trip, cond, shape_init])


def _external_data():
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value="../../../etc/passwd")
    return _graph([helper.make_node("Identity", ["w"], ["y"])], [w])


def _unknown_op():
    from onnx import helper
    return _graph([helper.make_node("NoSuchOperator", [], ["y"], name="mystery")])


@pytest.mark.parametrize("case,match", [
    ("garbage", "member0.onnx: not a readable ONNX graph \\(DecodeError\\)$"),
    ("sparse 2 GB", "member0.onnx: ONNX graph of 2,048 MB > limit 1,024 MB per graph$"),
    ("fifo", "member0.onnx: ONNX graph not a regular file \\(FIFO\\)$"),
    ("ConstantOfShape 6.4 GB", "member0.onnx: node 'fill' \\(ConstantOfShape\\) asks for 6.2 GB > limit 1 GB per "
                               "tensor; refused before onnxruntime runs it$"),
    ("in a Loop body", "member0.onnx: node 'big' \\(ConstantOfShape\\) asks for 6.2 GB > limit 1 GB"),
    ("external data", "member0.onnx: initializer 'w' keeps its data in another file"),
])
def test_hostile_graph_files_are_refused_before_a_session_is_made(tmp_path, fifo, monkeypatch, case, match):
    import onnx
    import onnxruntime
    from emotionnas.recognizer import load
    model = _onnx_model(tmp_path)
    member = model / "onnx" / "member0.onnx"
    if case == "garbage":
        member.write_bytes(b"this is not an ONNX graph\n" * 100)
    elif case == "sparse 2 GB":
        with open(member, "wb") as f:
            f.truncate(2 * 2 ** 30)  # sparse: no disk used
    elif case == "fifo":
        fifo(member)
    else:
        onnx.save(_constant_of_shape([1600, 1024, 1024]) if case.startswith("ConstantOfShape") else
                  _in_a_loop_body([1600, 1024, 1024]) if case == "in a Loop body" else _external_data(), member)

    def no_session(*args, **kwargs):
        raise AssertionError("onnxruntime got the graph")
    monkeypatch.setattr(onnxruntime, "InferenceSession", no_session)
    with pytest.raises(ConfigError, match=match) as e:
        load(model, backend="onnx")
    assert "\n" not in str(e.value) and str(e.value).startswith(str(member))


def test_graphs_onnxruntime_refuses_are_one_line_on_the_command_line(tmp_path, capsys):
    import onnx
    model = _onnx_model(tmp_path)
    onnx.save(_unknown_op(), model / "onnx" / "member0.onnx")
    wav = _speech(tmp_path / "a.wav")
    assert main(["predict", "--backend", "onnx", "--model", str(model), str(wav)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {model / 'onnx' / 'member0.onnx'}: onnxruntime cannot "
                                                "load this graph (") and "NoSuchOperator" in err[0], err


def test_a_size_known_only_at_run_time_meets_the_session_arena_cap(tmp_path):
    """A ConstantOfShape whose shape is the graph's input passes the static check; at run time
    onnxruntime's capped arena refuses 6.4 GB before allocating. Run under RLIMIT_AS 3 GiB: an
    uncapped session would fail there with another message (and never take the machine's memory)."""
    import onnx
    from onnx import TensorProto, helper
    node = helper.make_node("ConstantOfShape", ["n"], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    path = tmp_path / "dynamic.onnx"
    onnx.save(_graph([node], inputs=[helper.make_tensor_value_info("n", TensorProto.INT64, [3])]), path)
    code = textwrap.dedent(f"""
        import resource
        import numpy as np
        import onnxruntime as ort
        from emotionnas.errors import ConfigError
        from emotionnas.recognizer.onnx_guard import checked_session, run_session
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2 ** 30, 3 * 2 ** 30))
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        s = checked_session({str(path)!r}, opts)
        print(run_session(s, {{"n": np.array([2, 3, 4], np.int64)}}, "dynamic.onnx")[0].shape)
        try:
            run_session(s, {{"n": np.array([1600, 1024, 1024], np.int64)}}, "dynamic.onnx")
        except ConfigError as e:
            print(e)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines[0] == "(2, 3, 4)", proc.stderr[-2000:]
    assert lines[1].startswith("dynamic.onnx: onnxruntime failed running this graph (") and \
        "smaller than requested bytes of 6710886400" in lines[1], lines


# --- --config -------------------------------------------------------------------------------

def test_a_preset_name_wins_over_a_folder_or_file_of_that_name(tmp_path, monkeypatch, fifo):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # was: "Is a directory"
    (tmp_path / "paper").write_text("train:\n  epochs: 3\n")
    assert _config_file_or_preset("demo").to_dict() == RunConfig.preset("demo").to_dict()
    assert _config_file_or_preset("paper").to_dict() == RunConfig.preset("paper").to_dict()
    assert _config_file_or_preset("./paper").train.epochs == 3  # written as a path: the file
    (tmp_path / "mine.yml").write_text("train:\n  epochs: 4\n")
    assert _config_file_or_preset("mine.yml").train.epochs == 4
    with pytest.raises(ConfigError, match="^--config ./demo: not a regular file \\(directory\\)$"):
        _config_file_or_preset("./demo")
    (tmp_path / "other").mkdir()
    with pytest.raises(ConfigError, match="^--config other: not a regular file \\(directory\\) "
                                          "\\(presets: demo, paper\\)$"):
        _config_file_or_preset("other")
    fifo(tmp_path / "piped.yaml")
    with pytest.raises(ConfigError, match="^--config piped.yaml: not a regular file \\(FIFO\\)$"):
        _config_file_or_preset("piped.yaml")
