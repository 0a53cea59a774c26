import pytest

from emotionnas.errors import ConfigError
from emotionnas.reports.draw_rnn import draw_recipe
from emotionnas.space.recipe import gru_recipe, lstm_recipe


@pytest.mark.parametrize("recipe", [lstm_recipe(), gru_recipe()])
def test_draw_recipe_writes_png_and_svg(tmp_path, recipe):
    png, svg = draw_recipe(recipe, tmp_path / "cell")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<svg" in text and "h_new_0" in text and "h_prev_0" in text


def test_draw_rejects_invalid_recipe(tmp_path):
    with pytest.raises(ConfigError):
        draw_recipe({"h_new_0": {"op": "linear", "input": ["x"]}}, tmp_path / "bad")
