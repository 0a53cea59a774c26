"""Each setting is parsed in one place, and the names a config may hold agree with the tables
that give them meaning (a contract test: adding a name to one side only fails here)."""
import pytest

from emotionnas.config import FUSIONS, POOLINGS, RunConfig


def test_config_name_lists_agree_with_the_model_tables():
    from emotionnas.features.encoders import ENCODERS
    from emotionnas.features.encoder_ref import REGISTERED
    from emotionnas.models import fusion, rnn_branch
    from emotionnas.space.families import FAMILIES
    from emotionnas.training.ensembles import ENSEMBLE_BUILDERS
    from emotionnas.training.strategies import STRATEGIES
    assert set(FUSIONS) == set(fusion.FUSIONS)
    assert rnn_branch.POOLINGS is POOLINGS
    assert set(REGISTERED) == set(ENCODERS)
    cfg = RunConfig()
    assert cfg.selection.strategy in STRATEGIES and cfg.selection.ensemble in ENSEMBLE_BUILDERS
    assert set(cfg.space.deep) <= set(FAMILIES) and set(cfg.space.spectrogram) - {"none"} <= set(FAMILIES)


@pytest.mark.parametrize("name, base, dtype, float_name, whisper", [
    ("whisper-base@int8", "whisper-base", "int8", "whisper-base", True),
    ("whisper-tiny.en", "whisper-tiny.en", None, "whisper-tiny.en", True),
    ("hf:openai/whisper-small", "hf:openai/whisper-small", None, "hf:openai/whisper-small", True),
    ("facebook/wav2vec2-base", "facebook/wav2vec2-base", None, "facebook/wav2vec2-base", False),
])
def test_an_encoder_reference_is_parsed_once_into_its_parts(name, base, dtype, float_name, whisper):
    from emotionnas.features.encoder_ref import EncoderRef
    ref = EncoderRef.parse(name)
    assert (ref.base, ref.dtype, ref.float_name, ref.has_whisper_blocks) == (base, dtype, float_name, whisper)


@pytest.mark.parametrize("bad", ["whisper-base@int3", "my/model@int8", ""])
def test_a_bad_encoder_reference_is_one_line(bad):
    from emotionnas.features.encoders.base import EncoderError
    from emotionnas.features.encoder_ref import EncoderRef
    with pytest.raises(EncoderError) as e:
        EncoderRef.parse(bad)
    assert "\n" not in str(e.value)


def test_no_module_takes_the_encoder_string_apart_itself():
    """The '@' of `whisper-base@int8` is split in features/encoder_ref.py only."""
    from pathlib import Path

    import emotionnas
    root = Path(emotionnas.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if 'partition("@")' in p.read_text() and p.name != "encoder_ref.py"]
    offenders += [str(p.relative_to(root)) for p in root.rglob("*.py") if '"whisper" in cfg' in p.read_text()]
    assert offenders == []


def test_cli_flags_become_overrides_applied_once_with_one_precedence(tmp_path):
    """config file < the flags that name a setting < each --set in order, for every such flag."""
    from emotionnas.cli.commands import FLAG_SETTINGS, _load_run_config
    from emotionnas.cli.parser import build_parser
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("protocol: kfold\nworkers: 1\nbaselines: false\nfeatures:\n  encoder: whisper-tiny.en\n")
    parse = build_parser().parse_args
    base = ["run", "demo", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(cfg_file)]
    cfg = _load_run_config(parse(base))
    assert (cfg.protocol, cfg.workers, cfg.baselines, cfg.features.encoder) == ("kfold", 1, False, "whisper-tiny.en")
    cfg = _load_run_config(parse(base + ["--protocol", "loso", "--workers", "3", "--baselines", "--encoder",
                                         "whisper-base", "--cache", "c", "--executor", "local", "--search-per-fold",
                                         "--option", "subset=all"]))
    assert (cfg.protocol, cfg.workers, cfg.baselines, cfg.features.encoder, cfg.features.cache_dir,
            cfg.search_per_fold, cfg.corpus_options) == ("loso", 3, True, "whisper-base", "c", True, {"subset": "all"})
    cfg = _load_run_config(parse(base + ["--protocol", "loso", "--workers", "3", "--set", "protocol=kfold",
                                         "--set", "workers=2", "--set", "workers=4"]))
    assert (cfg.protocol, cfg.workers) == ("kfold", 4)  # --set wins, the later --set over the earlier
    run_help = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
                    if a.dest == "set").help
    assert "then each --set in order" in run_help
    assert all(flag in {a.dest for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions}
               for flag in FLAG_SETTINGS)


def test_cli_choices_come_from_the_registries():
    from emotionnas.cli.parser import build_parser
    from emotionnas.data.corpora import CORPORA
    from emotionnas.data.folds import PROTOCOLS
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    actions = {a.dest: a for a in run._actions}
    assert list(actions["protocol"].choices) == list(PROTOCOLS)
    assert all(name in actions["name"].help for name in CORPORA)  # urdu included
