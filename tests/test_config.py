import pytest

from emotionnas.config import RunConfig
from emotionnas.errors import ConfigError


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = RunConfig(corpus="emodb", protocol="kfold")
    cfg.train.epochs = 7
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    back = RunConfig.from_yaml(p, overrides=["cnn.C=8", "fusion=concat", "features.deep_layers=[2,3]"])
    assert back.corpus == "emodb" and back.train.epochs == 7
    assert back.cnn.C == 8 and back.fusion == "concat" and back.features.deep_layers == [2, 3]


@pytest.mark.parametrize("text,msg", [
    ("corpus: emodb\nbogus: 1\n", "unknown key"),
    ("train:\n  epochs: many\n", "expected int"),
    ("train:\n  epochs: 2.5\n", "integer"),
    ("- a list\n", "mapping"),
    ("train: [1, 2\n", "cannot read YAML"),
    ("ablations: maybe\n", "true/false"),
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


def test_shipped_configs_load_and_differ_from_defaults():
    from pathlib import Path
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert configs, "configs/ ships at least one config"
    for path in configs:
        cfg = RunConfig.from_yaml(path)
        assert cfg.to_dict() != RunConfig().to_dict(), f"{path.name} changes nothing"
