"""Model shapes, parameter counts worked out by hand, LRN, init and config errors (CPU, fast)."""

import pytest
import torch
from torch import nn

from reproduce.nets.alexnet import BIAS_ONE, KERNEL_PLANS, MIDDLE_CONVS
from reproduce.nets.layers import GroupedLRN, LocallyConnected2d, SpatialLRN
from reproduce.nets.models import BUILDERS, MODEL_KEYS, build_model, describe, input_size, layer_table
from reproduce.spec import params

PAPER_NET = {"model": "alexnet", "groups": 2}
SMALL_NET = {"model": "alexnet-small", "width": 0.25, "in_channels": 1, "num_classes": 10}


@pytest.fixture(scope="module")
def paper_net():
    torch.manual_seed(0)
    return build_model(PAPER_NET)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(out, k, inp):
    return out * k * k * inp + out


def fc(inp, out):
    return inp * out + out


# --- parameter counts, by hand ---------------------------------------------------------

def test_paper_net_has_the_two_tower_parameter_count(paper_net):
    expected = (conv(96, 11, 3) + conv(256, 5, 48) + conv(384, 3, 256) + conv(384, 3, 192)
                + conv(256, 3, 192) + fc(256 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000))
    assert expected == 60_965_224
    assert count(paper_net) == expected


def test_one_tower_alexnet_sees_all_maps_in_conv2_conv4_conv5():
    expected = (conv(96, 11, 3) + conv(256, 5, 96) + conv(384, 3, 256) + conv(384, 3, 384)
                + conv(256, 3, 384) + fc(9216, 4096) + fc(4096, 4096) + fc(4096, 1000))
    assert count(build_model({"model": "alexnet"})) == expected == 62_378_344


def test_half_net_halves_conv1_to_conv4_only():
    expected = (conv(48, 11, 3) + conv(128, 5, 48) + conv(192, 3, 128) + conv(192, 3, 192)
                + conv(256, 3, 192) + fc(256 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000))
    assert count(build_model({"model": "alexnet", "kernels": "half"})) == expected == 59_798_312


# Section 7's depth ablation (C15) on the two-tower net: the layer after the removed one takes its
# input's maps, and pooling follows the last conv layer left.
@pytest.mark.parametrize("removed, expected", [
    ("conv3", conv(96, 11, 3) + conv(256, 5, 48) + conv(384, 3, 128) + conv(256, 3, 192)
     + fc(256 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000)),
    ("conv4", conv(96, 11, 3) + conv(256, 5, 48) + conv(384, 3, 256) + conv(256, 3, 192)
     + fc(256 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000)),
    ("conv5", conv(96, 11, 3) + conv(256, 5, 48) + conv(384, 3, 256) + conv(384, 3, 192)
     + fc(384 * 6 * 6, 4096) + fc(4096, 4096) + fc(4096, 1000)),
])
def test_removing_a_middle_conv_layer_rewires_the_next(removed, expected):
    cfg = {"model": "alexnet", "groups": 2, "remove_conv": removed}
    net = build_model(cfg)
    assert count(net) == expected
    names = [row["name"] for row in layer_table(cfg)]
    assert removed not in names and [n for n in names if n.startswith("conv")] == [
        c for c in ("conv1", "conv2", "conv3", "conv4", "conv5") if c != removed]
    last_conv = max(n for n in names if n.startswith("conv"))
    assert names[names.index("flatten") - 1] == "pool" + last_conv[-1]
    assert tuple(net(torch.zeros(2, 3, 227, 227)).shape) == (2, 1000)


@pytest.mark.parametrize("removed", ["conv3", "conv4", "conv5"])
def test_depth_variants_of_the_small_net_train_on_32_px(removed):
    cfg = {**SMALL_NET, "remove_conv": removed}
    rows = layer_table(cfg)
    assert rows[-1]["output_shape"] == (10,)
    assert tuple(build_model(cfg)(torch.zeros(2, 1, 32, 32)).shape) == (2, 10)


def test_small_net_at_quarter_width():
    # widths 96, 256, 384, 384, 256, 4096 x 0.25; final map 32 -> 15 -> 7 -> 3.
    expected = (conv(24, 5, 1) + conv(64, 5, 24) + conv(96, 3, 64) + conv(96, 3, 96)
                + conv(64, 3, 96) + fc(64 * 3 * 3, 1024) + fc(1024, 1024) + fc(1024, 10))
    assert count(build_model(SMALL_NET)) == expected == 1_883_578


@pytest.mark.parametrize("lrn", [True, False])
def test_cifar_18pct_count_does_not_depend_on_lrn(lrn):
    expected = conv(32, 5, 3) + conv(32, 5, 32) + conv(64, 5, 32) + fc(64 * 4 * 4, 10)
    cfg = {"model": "cifar-18pct", "num_classes": 10, "lrn": lrn}
    assert count(build_model(cfg)) == expected == 89_578


def test_cifar_11pct_count_with_unshared_local_layers():
    # A local layer has one 3x3xC filter per output position (6x6) and one bias per unit.
    local3 = 36 * 32 * (3 * 3 * 64) + 32 * 36
    local4 = 36 * 32 * (3 * 3 * 32) + 32 * 36
    expected = conv(64, 5, 3) + conv(64, 5, 64) + local3 + local4 + fc(32 * 6 * 6, 10)
    assert count(build_model({"model": "cifar-11pct", "num_classes": 10})) == expected == 1_116_490


# --- shapes --------------------------------------------------------------------------

def test_paper_net_forward_shapes(paper_net):
    x = torch.randn(2, 3, 227, 227)
    assert paper_net[:4](x).shape == (2, 96, 27, 27)  # conv1, act, lrn, pool
    names = [name for name, _ in paper_net.named_children()]
    assert paper_net[:names.index("pool5") + 1](x).shape == (2, 256, 6, 6)
    assert paper_net(x).shape == (2, 1000)


ALL_ARMS = [dict(cfg, pooling=p) for p in ("overlapping", "non-overlapping") for cfg in (
    SMALL_NET, dict(SMALL_NET, groups=2), {"model": "cifar-18pct", "num_classes": 10},
    {"model": "cifar-11pct", "num_classes": 10}, {"model": "cifar-11pct", "lrn": False})]


@pytest.mark.parametrize("cfg", ALL_ARMS, ids=lambda c: f"{c['model']}-{c['pooling']}")
def test_layer_table_shapes_match_a_forward_pass(cfg):
    model, rows = build_model(cfg), layer_table(cfg)
    side = input_size(cfg["model"])
    x = torch.randn(2, cfg.get("in_channels", 3), side, side)
    for (name, module), row in zip(model.named_children(), rows):
        x = module(x)
        assert row["name"] == name and x.shape[1:] == row["output_shape"]
    assert x.shape == (2, cfg.get("num_classes", 1000))


def test_paper_net_layer_table_matches_figure_2():
    shapes = {r["name"]: r["output_shape"] for r in layer_table(PAPER_NET)}
    assert shapes["conv1"] == (96, 55, 55) and shapes["conv2"] == (256, 27, 27)
    assert shapes["conv3"] == shapes["conv4"] == (384, 13, 13)
    assert shapes["conv5"] == (256, 13, 13) and shapes["pool5"] == (256, 6, 6)


def test_neuron_count_of_paper_net():
    neurons = sum(r["neurons"] for r in layer_table(PAPER_NET))
    assert neurons == 290_400 + 186_624 + 64_896 + 64_896 + 43_264 + 4096 + 4096 + 1000
    assert neurons == 659_272
    assert abs(neurons - 650_000) / 650_000 < 0.02


def test_input_sizes():
    assert [input_size(m) for m in params.MODELS] == [227, 32, 224, 32, 24]


@pytest.mark.parametrize("side, pooled", [(0, {"overlapping": 3, "non-overlapping": 4}),
                                          (31, {"overlapping": 3, "non-overlapping": 3})])
def test_at_31_px_both_pooling_arms_leave_conv5_the_same_map_as_the_papers_do_at_227(side, pooled):
    """At 32 px 2x2 pooling leaves conv5 a 4x4 map against 3x3 (a confound of C4); at 31 px both give 3x3,
    as both give 6x6 in the paper's net at 227 px."""
    for pooling, want in pooled.items():
        config = {"model": "alexnet-small", "width": 0.125, "pooling": pooling, "input_side": side, "in_channels": 1,
                  "num_classes": 10}
        rows = {row["name"]: row["output_shape"] for row in layer_table(config)}
        assert rows["pool5"][1:] == (want, want)
        model = build_model(config)
        assert model(torch.zeros(2, 1, side or 32, side or 32)).shape == (2, 10)
    paper = {p: {r["name"]: r["output_shape"] for r in layer_table({**PAPER_NET, "pooling": p})}["pool5"][1:]
             for p in pooled}
    assert set(paper.values()) == {(6, 6)}


def test_only_the_alexnet_family_takes_another_input_side():
    with pytest.raises(params.ParamError, match="input_side must be 0 for cifar-18pct"):
        build_model({"model": "cifar-18pct", "input_side": 31})


# --- the C4 rule: both pooling arms share identical FC layers ----------------------------

def test_paper_net_needs_no_resize_for_non_overlapping_pooling():
    rows = layer_table(dict(PAPER_NET, pooling="non-overlapping"))
    assert "fcpool" not in [r["name"] for r in rows]
    assert {r["name"]: r["output_shape"] for r in rows}["pool5"] == (256, 6, 6)  # 55-27-13-6


@pytest.mark.parametrize("cfg", [SMALL_NET, {"model": "cifar-18pct"}, {"model": "cifar-11pct"}])
def test_pooling_arms_have_the_same_fc_layers(cfg):
    overlapping = build_model(dict(cfg, pooling="overlapping"))
    non_overlapping = build_model(dict(cfg, pooling="non-overlapping"))
    fc_in = [[m.in_features for m in net.modules() if isinstance(m, nn.Linear)]
             for net in (overlapping, non_overlapping)]
    assert fc_in[0] == fc_in[1]
    assert count(overlapping) == count(non_overlapping)


def test_small_net_non_overlapping_is_resized_to_the_overlapping_map():
    model = build_model(dict(SMALL_NET, pooling="non-overlapping"))
    assert isinstance(model.fcpool, nn.AdaptiveMaxPool2d) and model.fc6.in_features == 64 * 9


# --- LRN -----------------------------------------------------------------------------

def test_grouped_lrn_does_not_cross_the_tower_boundary():
    lrn = GroupedLRN(groups=2)
    x = torch.rand(1, 96, 5, 5) * 50
    bumped = x.clone()
    bumped[:, 0] += 100.0  # channel 0 is in tower one; its neighbours 1-2 must change
    before, after = lrn(x), lrn(bumped)
    assert torch.equal(before[:, 48:], after[:, 48:])
    assert not torch.allclose(before[:, 1], after[:, 1])
    # channel 47 borders tower two: with one shared LRN a bump there would reach channel 48
    bumped[:, 47] += 100.0
    assert torch.equal(lrn(bumped)[:, 48:], before[:, 48:])


def test_grouped_lrn_is_the_paper_formula_per_tower():
    x = torch.rand(2, 96, 4, 4) * 30
    out = GroupedLRN(groups=2)(x)
    reference = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    assert torch.allclose(out[:, :48], reference(x[:, :48]))
    assert torch.allclose(out[:, 48:], reference(x[:, 48:]))
    # Written out for channel 10: neighbours 8..12, k=2, alpha/n = 1e-4/5, beta=0.75.
    a = x[:, 8:13].pow(2).sum(1)
    assert torch.allclose(out[:, 10], x[:, 10] / (2 + 1e-4 / 5 * a) ** 0.75)


@pytest.mark.parametrize("size", [5, 4], ids=["paper-size-5", "even-size-4"])
def test_cross_channel_lrn_forward_and_hand_written_backward_are_nn_local_response_norms(size):
    """In float64: values and input gradients equal to PyTorch's own LRN (autograd through its formula),
    and gradcheck's finite differences agree with the hand-written backward."""
    x = (torch.rand(2, 7, 3, 3, dtype=torch.float64) * 40).requires_grad_()
    ours = GroupedLRN(groups=1, size=size, alpha=1e-2, beta=0.75, k=2.0)
    stock = nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)
    grad_out = torch.randn(2, 7, 3, 3, dtype=torch.float64)
    (mine,) = torch.autograd.grad(ours(x), x, grad_out)
    (theirs,) = torch.autograd.grad(stock(x), x, grad_out)
    torch.testing.assert_close(ours(x), stock(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(ours, (x,))
    assert torch.autograd.gradcheck(GroupedLRN(groups=2, size=size, alpha=1e-2, beta=0.75, k=2.0),
                                    (torch.rand(1, 8, 2, 2, dtype=torch.float64, requires_grad=True) * 40,))


def spatial_by_autograd(x, size, alpha, beta, k):
    """cuda-convnet's rnorm written as plain tensor ops, differentiated by autograd."""
    mean_square = nn.functional.avg_pool2d(x * x, size, stride=1, padding=size // 2, count_include_pad=True)
    return x / (k + alpha * mean_square).pow(beta)


def test_spatial_lrn_forward_and_hand_written_backward_match_autograd_through_its_formula():
    x = (torch.rand(2, 3, 5, 5, dtype=torch.float64) * 40).requires_grad_()
    ours = SpatialLRN(size=3, alpha=1e-2, beta=0.75, k=1.0)
    grad_out = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    (mine,) = torch.autograd.grad(ours(x), x, grad_out)
    (reference,) = torch.autograd.grad(spatial_by_autograd(x, 3, 1e-2, 0.75, 1.0), x, grad_out)
    torch.testing.assert_close(ours(x), spatial_by_autograd(x, 3, 1e-2, 0.75, 1.0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mine, reference, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(ours, (x,))


def test_paper_net_lrn_uses_the_paper_constants(paper_net):
    norm = paper_net.lrn1
    assert (norm.size, norm.alpha, norm.beta, norm.k) == (5, 1e-4, 0.75, 2.0)
    assert paper_net.lrn1.groups == paper_net.lrn2.groups == 2


def test_spatial_lrn_matches_cuda_convnet_rnorm():
    x = torch.rand(1, 2, 5, 5) * 30
    out = SpatialLRN(size=3, alpha=5e-5, beta=0.75, k=1.0)(x)
    corner = x[0, 1, 0:2, 0:2].pow(2).sum()  # the window clipped at the border, divisor still 9
    centre = x[0, 1, 1:4, 1:4].pow(2).sum()
    assert torch.allclose(out[0, 1, 0, 0], x[0, 1, 0, 0] / (1 + 5e-5 / 9 * corner) ** 0.75)
    assert torch.allclose(out[0, 1, 2, 2], x[0, 1, 2, 2] / (1 + 5e-5 / 9 * centre) ** 0.75)


def test_locally_connected_layer_uses_a_filter_per_position():
    torch.manual_seed(0)
    layer = LocallyConnected2d(2, 3, 3, in_side=4, padding=1)
    nn.init.normal_(layer.bias)
    x = torch.randn(2, 2, 4, 4)
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    out = layer(x)
    for row, col in [(0, 0), (2, 3)]:
        patch = padded[:, :, row:row + 3, col:col + 3].reshape(2, -1)
        expected = patch @ layer.weight[row * 4 + col].T + layer.bias[:, row, col]
        assert torch.allclose(out[:, :, row, col], expected, atol=1e-6)


# --- init ----------------------------------------------------------------------------

def test_paper_init_weights_and_bias_one_layers(paper_net):
    assert paper_net.fc6.weight.std().item() == pytest.approx(0.01, rel=0.01)
    assert paper_net.conv1.weight.std().item() == pytest.approx(0.01, rel=0.05)
    for name, module in paper_net.named_children():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.all(module.bias == (1.0 if name in BIAS_ONE else 0.0)), name
    assert set(BIAS_ONE) == {"conv2", "conv4", "conv5", "fc6", "fc7"}


def test_zero_bias_init_and_cifar_biases_are_all_zero():
    for cfg in (dict(SMALL_NET, bias_init="zero"), {"model": "cifar-11pct"}):
        biases = [m.bias for m in build_model(cfg).modules() if hasattr(m, "bias")]
        assert biases and all(torch.all(b == 0) for b in biases)


def test_he_init_everywhere_but_the_classifier():
    """std sqrt(2 / fan_in) in every layer but the last, which keeps N(0, 0.01) so that the
    logits start small."""
    net = build_model(dict(SMALL_NET, weight_init="he"))
    assert net.fc8.weight.std().item() == pytest.approx(0.01, rel=0.1)
    for name in ("conv1", "conv3"):
        weight = getattr(net, name).weight
        assert weight.std().item() == pytest.approx((2 / weight[0].numel()) ** 0.5, rel=0.15), name
    assert net.fc6.weight.std().item() == pytest.approx((2 / net.fc6.in_features) ** 0.5, rel=0.05)
    local = build_model({"model": "cifar-11pct", "weight_init": "he"}).local3
    assert local.weight.std().item() == pytest.approx((2 / local.weight.shape[-1]) ** 0.5, rel=0.05)


# --- switches and errors --------------------------------------------------------------

def test_tanh_switch_replaces_every_relu():
    for cfg in (dict(SMALL_NET, activation="tanh"), {"model": "cifar-18pct", "activation": "tanh"}):
        modules = list(build_model(cfg).modules())
        assert any(isinstance(m, nn.Tanh) for m in modules)
        assert not any(isinstance(m, nn.ReLU) for m in modules)


def test_dropout_placement_and_switch():
    names = [n for n, _ in build_model(SMALL_NET).named_children()]
    assert names[names.index("fc6"):] == ["fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc8"]
    no_dropout = build_model(dict(SMALL_NET, dropout=0.0))
    assert not any(isinstance(m, nn.Dropout) for m in no_dropout.modules())


def test_lrn_switch_removes_the_lrn_layers():
    for model in ("alexnet-small", "cifar-18pct", "cifar-11pct"):
        kinds = {r["kind"] for r in layer_table({"model": model, "lrn": False, "width": 0.25})}
        assert not kinds & {"lrn", "spatial-lrn"}


@pytest.mark.parametrize("cfg, key, allowed", [
    ({"model": "alexnet", "groups": 3}, "groups", "one of 1, 2"),
    ({"model": "vgg"}, "model", "one of alexnet, alexnet-small"),
    ({"model": "alexnet", "activation": "sigmoid"}, "activation", "one of relu, tanh"),
    ({"model": "alexnet", "pooling": "avg"}, "pooling", "non-overlapping"),
    ({"model": "alexnet", "bias_init": "one"}, "bias_init", "zero"),
    ({"model": "alexnet", "lrn": 1}, "lrn", "on/off"),
    ({"model": "alexnet", "kernels": "half", "groups": 2}, "groups", "[1]"),
    ({"model": "alexnet", "remove_conv": "conv2"}, "remove_conv", "conv3"),
    ({"model": "cifar-18pct", "remove_conv": "conv3"}, "remove_conv", "'none'"),
    ({"model": "cifar-11pct", "kernels": "half"}, "kernels", "'paper'"),
    ({"model": "cifar-18pct", "groups": 2}, "groups", "[1]"),
    ({"model": "cifar-11pct", "groups": 2}, "groups", "[1]"),
])
def test_bad_config_names_the_key_and_allowed_values(cfg, key, allowed):
    with pytest.raises(ValueError, match=key) as error:
        build_model(cfg)
    assert allowed in str(error.value)


def test_unknown_model_in_input_size():
    with pytest.raises(ValueError, match="model"):
        input_size("lenet")


def test_describe_paper_net_shows_counts_beside_the_paper():
    text = describe(PAPER_NET)
    for needle in ("60,965,224", "659,272", "60 million", "650,000", "227", "253,440",
                   "alpha=5e-4", "tower"):
        assert needle in text


def test_lrn_gradient_matches_pytorchs_local_response_norm():
    x = (torch.randn(2, 12, 5, 5) * 40).requires_grad_()
    y = x.detach().clone().requires_grad_()
    GroupedLRN(groups=1)(x).pow(2).sum().backward()
    nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(y).pow(2).sum().backward()
    assert torch.allclose(x.grad, y.grad, rtol=1e-4, atol=1e-5)


def test_the_d2l_net_is_the_seed_notes_net():
    """Seed notes 003: d2l's Fashion-MNIST AlexNet, 46,764,746 parameters, 54x54 after conv1, fc6 from 6,400."""
    config = {**params.resolve({}, preset="gpu", network=params.D2L_NETWORK), "in_channels": 1, "num_classes": 10}
    net = build_model(config)
    assert sum(p.numel() for p in net.parameters()) == 46_764_746
    assert not any(isinstance(m, GroupedLRN) for m in net.modules())
    assert net.conv1.padding == (1, 1) and net.fc6.in_features == 6400
    assert net(torch.zeros(2, 1, 224, 224)).shape == (2, 10)
    bound = 1 / (96 * 25) ** 0.5  # PyTorch's own bias init, kept (bias_init torch): uniform in +-1/sqrt(fan_in)
    assert net.conv2.bias.abs().max() > 0 and net.conv2.bias.abs().max() <= bound
    limit = (6 / (96 * 25 + 256 * 25)) ** 0.5  # Xavier-uniform's bound for conv2
    assert net.conv2.weight.abs().max() <= limit and net.conv2.weight.abs().max() > 0.9 * limit


def test_the_models_read_the_one_declaration_of_names_choices_and_defaults():
    assert tuple(BUILDERS) == params.MODELS == params.BY_NAME["model"].choices
    assert params.BY_NAME["kernels"].choices == tuple(KERNEL_PLANS)
    assert params.BY_NAME["remove_conv"].choices == ("none", *MIDDLE_CONVS)
    assert MODEL_KEYS == tuple(p.name for p in params.PARAMS if p.builds_model) and "lrn" in MODEL_KEYS
    assert build_model({"model": "alexnet-small", "in_channels": 1, "num_classes": 10}).conv1.out_channels == 96


def test_where_c15b_shares_c15s_runs_the_nets_without_conv3_and_without_conv4_are_one_function():
    """claims.toml's same_as: with one tower and zero biases (the cpu preset), removing conv4 builds the same
    layers from the same random draws as removing conv3; with two towers it does not (conv4 is grouped)."""
    from reproduce.spec import plan

    claim = plan.load_registry()["C15b"]
    assert plan.shares_runs(claim, "cpu") == "C15" and plan.shares_runs(claim, "gpu") is None

    def built(remove, **settings):
        config = params.resolve({**params.get_preset("cpu").networks["alexnet"], "remove_conv": remove, **settings})
        torch.manual_seed(3)
        return build_model({**config, "in_channels": 1, "num_classes": 10}).eval()

    x = torch.randn(2, 1, 31, 31)
    without3, without4 = built("conv3"), built("conv4")
    assert [p.shape for p in without3.parameters()] == [p.shape for p in without4.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(without3.parameters(), without4.parameters()))
    assert torch.equal(without3(x), without4(x))
    two3, two4 = built("conv3", groups=2), built("conv4", groups=2)
    assert [p.shape for p in two3.parameters()] != [p.shape for p in two4.parameters()]


def test_lrn_alpha_reaches_both_lrn_layers_and_says_so_where_it_is_not_the_papers():
    config = {"model": "alexnet-small", "width": 0.125, "lrn_alpha": 0.056}
    small = build_model({**params.resolve(config), "in_channels": 1, "num_classes": 10})
    assert [m.alpha for m in small.modules() if isinstance(m, GroupedLRN)] == [0.056, 0.056]
    assert "alpha 560 times the paper's 1e-4" in describe(config)
    assert "times the paper's" not in describe({"model": "alexnet-small", "width": 0.125})
