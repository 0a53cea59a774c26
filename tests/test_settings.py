"""Each setting is parsed in one place, and the names a config may hold agree with the tables
that give them meaning (a contract test: adding a name to one side only fails here)."""
import pytest

from emotionnas.config import FUSIONS, POOLINGS, RunConfig


def test_config_name_lists_agree_with_the_model_tables():
    from emotionnas.features.encoders import ENCODERS
    from emotionnas.features.encoders.ref import REGISTERED
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
    from emotionnas.features.encoders.ref import EncoderRef
    ref = EncoderRef.parse(name)
    assert (ref.base, ref.dtype, ref.float_name, ref.has_whisper_blocks) == (base, dtype, float_name, whisper)


@pytest.mark.parametrize("bad", ["whisper-base@int3", "my/model@int8", ""])
def test_a_bad_encoder_reference_is_one_line(bad):
    from emotionnas.features.encoders.base import EncoderError
    from emotionnas.features.encoders.ref import EncoderRef
    with pytest.raises(EncoderError) as e:
        EncoderRef.parse(bad)
    assert "\n" not in str(e.value)


def test_no_module_takes_the_encoder_string_apart_itself():
    """The '@' of `whisper-base@int8` is split in features/encoders/ref.py only."""
    from pathlib import Path

    import emotionnas
    root = Path(emotionnas.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if 'partition("@")' in p.read_text() and p.name != "ref.py"]
    offenders += [str(p.relative_to(root)) for p in root.rglob("*.py") if '"whisper" in cfg' in p.read_text()]
    assert offenders == []
