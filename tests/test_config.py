import pytest

from emotionnas.config import RunConfig
from emotionnas.errors import ConfigError


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = RunConfig(corpus="emodb", protocol="kfold")
    cfg.train.epochs = 7
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    back = RunConfig.from_yaml(p, overrides=["cnn.C=8", "space.fusion=[ism]", "space.hidden=[64, 128]",
                                             "cnn.search.epochs=9"])
    assert back.corpus == "emodb" and back.train.epochs == 7
    assert back.cnn.C == 8 and back.space.fusion == ["ism"] and back.space.hidden == [64, 128]
    assert back.cnn.search.epochs == 9 and back.to_dict() == RunConfig.from_dict(back.to_dict()).to_dict()


@pytest.mark.parametrize("override,msg", [
    ("space.deep=transformer", "space.deep"),
    ("space.hidden=[big]", "expected int"),
    ("space.pooling=attention", "expected a list"),
    ("cnn.search.C=8", "unknown key"),        # typed sections: no silent override of cnn.C
    ("selection.inner_folds=1", "inner_folds"),
    ("executor=ssh://x", "executor"),
])
def test_typed_sections_refuse_bad_values(override, msg):
    from emotionnas.config import apply_overrides
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(RunConfig(), [override])


def test_unregistered_family_names_are_refused_before_the_run_starts(tmp_path):
    from emotionnas.config import apply_overrides
    from emotionnas.space.pipeline import check_space
    from emotionnas.training.crossval import run_crossval
    cfg = apply_overrides(RunConfig(), ["space.deep=[gru, transformer]"])
    with pytest.raises(ConfigError, match=r"space.deep: \['transformer'\] not among the registered families"):
        check_space(cfg.space)
    with pytest.raises(ConfigError, match="space.deep"):
        run_crossval(cfg, tmp_path / "run", progress=False, log=lambda *a: None)
    assert not (tmp_path / "run").exists()  # refused before the folder is claimed


@pytest.mark.parametrize("text,msg", [
    ("corpus: emodb\nbogus: 1\n", "unknown key"),
    ("train:\n  epochs: many\n", "expected int"),
    ("train:\n  epochs: 2.5\n", "integer"),
    ("- a list\n", "mapping"),
    ("train: [1, 2\n", "cannot read YAML"),
    ("baselines: maybe\n", "true/false"),
])
def test_malformed_config_one_line_error(tmp_path, text, msg):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        RunConfig.from_yaml(p)
    assert msg in str(e.value) and str(p) in str(e.value) and "\n" not in str(e.value)


def test_bad_override():
    from emotionnas.config import apply_overrides
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(RunConfig(), ["no-equals-sign"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides(RunConfig(), ["corpus.x=1"])


def test_shipped_presets_load_and_differ_from_defaults():
    from emotionnas.config import PRESETS
    assert set(PRESETS) == {"demo", "paper"}
    for name in PRESETS:
        cfg = RunConfig.preset(name)
        assert cfg.to_dict() != RunConfig().to_dict(), f"{name} changes nothing"
    paper = RunConfig.preset("paper")
    assert paper.space.fusion == ["ism"] and paper.features.spectrogram_size == 140 and paper.cnn.C == 6
    assert RunConfig.preset("demo", ["train.epochs=2"]).train.epochs == 2
    with pytest.raises(ConfigError, match="unknown preset"):
        RunConfig.preset("fast")


def test_config_flag_takes_a_preset_name_or_a_file(tmp_path):
    from emotionnas.cli import _config_file_or_preset
    assert _config_file_or_preset("paper").to_dict() == RunConfig.preset("paper").to_dict()
    p = tmp_path / "mine.yaml"
    p.write_text("train:\n  epochs: 3\n")
    assert _config_file_or_preset(str(p)).train.epochs == 3
