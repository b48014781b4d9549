"""The one parameter declaration: defaults are the paper's, bad names and values are refused."""

import pytest

from reproduce.spec import params
from reproduce.spec.params import ParamError


def test_defaults_are_the_papers_recipe():
    config = params.resolve()
    assert (config["batch_size"], config["lr"], config["momentum"], config["weight_decay"]) == (
        128, 0.01, 0.9, 5e-4)
    assert (config["activation"], config["lrn"], config["pooling"], config["dropout"]) == (
        "relu", True, "overlapping", 0.5)


def test_preset_then_overrides_win_in_that_order():
    config = params.resolve({"epochs": "3"}, preset="smoke")
    assert config["model"] == params.PRESETS["smoke"].networks["alexnet"]["model"]
    assert config["epochs"] == 3


@pytest.mark.parametrize("name, text, expected", [
    ("lrn", "off", False), ("lrn", "on", True), ("lrn", True, True),
    ("dropout", "0", 0.0), ("groups", "2", 2), ("pooling", "non-overlapping", "non-overlapping"),
])
def test_values_are_parsed_from_text_or_python(name, text, expected):
    assert params.validate({name: text}) == {name: expected}


@pytest.mark.parametrize("name, value, must_mention", [
    ("dropout", "1.5", "[0, 1)"),
    ("dropout", "-0.1", "[0, 1)"),
    ("pooling", "sideways", "overlapping, non-overlapping"),
    ("activation", "sigmoid", "relu, tanh"),
    ("groups", "3", "1, 2"),
    ("epochs", "two", "not an int"),
    ("epochs", 2.5, "not an int"),
    ("epochs", True, "not an int"),
    ("lrn", "maybe", "on/off"),
    ("model", "vgg16", "alexnet"),
    ("dataset", "mnist", "fashion-mnist"),
    ("lr", "nan", "out of range"),
    ("lr_drop_epochs", "31,22", "increasing epochs"),
    ("lr_drop_epochs", "0,5", "increasing epochs"),
    ("lr_drop_epochs", "22;31", "increasing epochs"),
])
def test_bad_values_name_the_parameter_and_what_is_allowed(name, value, must_mention):
    with pytest.raises(ParamError) as error:
        params.validate({name: value})
    assert str(error.value).startswith(f"{name}:")
    assert must_mention in str(error.value)


def test_unknown_parameter_is_an_error_not_ignored():
    with pytest.raises(ParamError, match="unknown parameter 'bogus'"):
        params.resolve({"bogus": 1})


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ParamError, match="smoke"):
        params.resolve(preset="huge")


def test_every_preset_and_network_is_valid():
    for name, preset in params.PRESETS.items():
        assert set(params.NETWORKS) <= set(preset.networks) <= {*params.NETWORKS, params.D2L_NETWORK}
        for network in preset.networks:
            params.resolve(preset=name, network=network)
    with pytest.raises(params.ParamError, match="network: 'd2l' is not part of preset cpu"):
        params.resolve(preset="cpu", network=params.D2L_NETWORK)


def test_auto_preset_follows_cuda_and_bad_presets_are_named():
    assert params.pick_preset("auto", cuda_available=True) == "gpu"
    assert params.pick_preset("auto", cuda_available=False) == "cpu"
    assert params.pick_preset("smoke", cuda_available=True) == "smoke"
    with pytest.raises(ParamError, match="preset: huge is not allowed"):
        params.pick_preset("huge", cuda_available=False)


def test_execution_details_stay_out_of_the_result_config():
    config = params.resolve()
    assert "results_dir" not in params.result_config(config)
    assert "device" not in params.result_config(config)
    assert "seed" in params.result_config(config)
