import copy

import pytest

from conftest import default_config
from erasure.config import ConfigError, load_config, slug


@pytest.fixture
def base(tmp_path):
    return default_config(tmp_path)


def _error(config):
    with pytest.raises(ConfigError) as e:
        load_config(config)
    return str(e.value)


def test_default_config_is_valid(base):
    cfg = load_config(base)
    assert cfg["generate"]["images_per_prompt"] >= 1


@pytest.mark.parametrize("path, value, expected", [
    (("seed",), "zero", "config field seed: 'zero' is not of type 'integer'"),
    (("mining", "d1"), -0.5, "config field mining.d1"),
    (("mining", "s1"), 1.5, "config field mining.s1"),
    (("generate", "images_per_prompt"), 0, "config field generate.images_per_prompt"),
    (("closed_form", "ridge"), 0, "config field closed_form.ridge"),
    (("world",), "sdxl", "config field world"),
    (("prompt_template",), "a photo", "config field prompt_template"),
    (("erase",), [], "config field erase"),
])
def test_bad_values_name_their_field(base, path, value, expected):
    cfg = copy.deepcopy(base)
    target = cfg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert expected in _error(cfg)


def test_unknown_key_is_named(base):
    base["mining"]["radius"] = 1
    assert "config field mining: unknown key(s) ['radius']" in _error(base)


def test_unknown_concept_and_method(base):
    assert "unknown concept 'unicorn'" in _error({**base, "erase": ["unicorn"]})
    assert "unknown method 'magic'" in _error({**base, "run_methods": ["original", "magic"]})


def test_cross_field_checks(base):
    base["mining"].update(d1=1.0, d2=0.5)
    assert "mining.d2: must exceed mining.d1" in _error(base)


def test_sd_world_needs_a_model(base):
    assert "sd.model: required" in _error({**base, "world": "sd"})


def test_missing_weights_say_how_to_get_them(base, tmp_path):
    base["miniworld"]["weights"] = str(tmp_path / "nowhere")
    assert "snakemake pretrain" in _error(base)


@pytest.mark.parametrize("content, expected", [
    ("concept,prompt,seed\nheart,a heart,1\n", "missing column(s) ['kind']"),
    ("concept,prompt,seed,kind\n", "no rows"),
    ("concept,prompt,seed,kind\nheart,a heart,1,forget\n", "kind 'forget'"),
    ("concept,prompt,seed,kind\nheart,a heart,x,erase\n", "seed 'x' is not an integer"),
    ("concept,prompt,seed,kind\nheart,,1,erase\n", "empty prompt"),
])
def test_bad_extra_prompt_csvs(base, tmp_path, content, expected):
    csv = tmp_path / "extra.csv"
    csv.write_text(content)
    assert expected in _error({**base, "extra_prompts": [str(csv)]})


@pytest.mark.parametrize("name", ["../../etc", "a/b", "it's", "$(rm -rf ~)", "two words", "Amélie"])
def test_slugs_are_safe_and_distinct(name):
    s = slug(name)
    assert s.replace("-", "").replace("_", "").isalnum() and s.isascii()
    assert s != slug(name + "x")
