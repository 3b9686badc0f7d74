"""Every registered model: shape, dtype, odd sizes, determinism; and the paper's equalities."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.nn import functional as F

import models
from models.upsample import bilinear_upsampler


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# the three VGG16 FCNs hold 134 M parameters: building one takes seconds, so they run with the slow tests
VGG = {"fcn32s", "fcn16s", "fcn8s"}
EVERY_MODEL = [pytest.param(n, marks=pytest.mark.slow) if n in VGG else n for n in models.list_models()]


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_model_gives_logits_at_input_size(name):
    model = models.get_model(name, num_classes=5).eval()
    with torch.no_grad():  # the paper's zero-initialised scoring layers give all-zero logits: score first
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(0, 0.05)
    x = torch.randn(2, 3, 67, 91)
    with torch.inference_mode():
        first, second = model(x), model(x)
    assert first.shape == (2, 5, 67, 91)
    assert first.dtype == torch.float32
    assert first.std() > 0 and torch.equal(first, second)  # varied logits, the same twice
    assert model.weights_meta.categories == tuple(f"class_{i}" for i in range(5))


def test_registry_names_the_paper_and_torchvision_models():
    expected = {"fcn32s", "fcn16s", "fcn8s", "fcn16s_deconv", "fcn_resnet50", "fcn_resnet101", "fcn8s_mobilenet_v3"}
    assert expected <= set(models.list_models())
    with pytest.raises(ValueError, match="unknown model 'fcn7s'.*fcn8s"):
        models.get_model("fcn7s")


@pytest.mark.slow  # a whole torchvision VGG16 and its FCN
def test_convolutionalize_equals_classifier_logits():
    vgg = torchvision.models.vgg11(weights=None, num_classes=10).eval()
    net = models.convolutionalize(vgg).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        expected, dense = vgg(x), net(x)
        heat = net(torch.randn(1, 3, 320, 384))
    assert dense.shape == (2, 10, 1, 1)
    torch.testing.assert_close(dense.flatten(1), expected, rtol=1e-4, atol=1e-4)
    assert heat.shape == (1, 10, 4, 6)  # a coarse map of class scores


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_bilinear_init_equals_interpolate_away_from_borders(factor):
    layer = bilinear_upsampler(3, factor, padding=factor // 2)
    x = torch.randn(1, 3, 6, 7)
    with torch.no_grad():
        up = layer(x)
    ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert up.shape == ref.shape
    torch.testing.assert_close(up[..., factor:-factor, factor:-factor], ref[..., factor:-factor, factor:-factor])
    off_diagonal = layer.weight.clone()
    off_diagonal[range(3), range(3)] = 0
    assert not off_diagonal.any() and layer.bias is None


def test_vgg_fcn_score_layers_start_at_zero():
    model = models.get_model("fcn8s", num_classes=3)
    for layer in (model.score_fr, model.score_pool4, model.score_pool3):
        assert not layer.weight.any() and not layer.bias.any()


@pytest.mark.parametrize("size", [(8, 8), (9, 13)])
def test_shift_and_stitch_of_maxpool_equals_dense_maxpool(size):
    x = torch.rand(2, 3, *size)
    dense = models.shift_and_stitch(lambda t: F.max_pool2d(t, 2, stride=2), x, 2)
    # the dense stride-1 pool sees the same zeros at the bottom and right edges
    reference = F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2, stride=1)
    assert dense.shape == x.shape
    torch.testing.assert_close(dense, reference)


def test_mobilenet_fcn8s_fuses_three_strides():
    model = models.get_model("fcn8s_mobilenet_v3", num_classes=4).eval()
    assert [m.in_channels for m in (model.score8, model.score16)] == [40, 112]
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 33, 65)).shape == (1, 4, 33, 65)


def _with_trained_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Running statistics and affine terms away from their defaults, so folding has work to do."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -0.2, 0.2), (module.running_var, 0.5, 1.5)):
                tensor.copy_(torch.empty_like(tensor).uniform_(low, high, generator=generator))
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
        if isinstance(module, torch.nn.Conv2d) and module.out_channels <= 8:  # zero-initialised scorers
            module.weight.data.normal_(0, 0.05, generator=generator)
    return model.eval()


# every BatchNorm of MobileNetV3 and ResNet-50 follows a convolution; the seed decoder's follow ReLU or a sum
@pytest.mark.parametrize("name, unfoldable", [("fcn8s_mobilenet_v3", 0), ("fcn16s_deconv", 5), ("fcn_resnet50", 1)])
def test_fold_batchnorm_keeps_the_output(name, unfoldable):
    model = _with_trained_batchnorm(models.get_model(name, num_classes=4))
    batchnorms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(2, 3, 45, 61)
    with torch.inference_mode():
        expected = model(x)
    folded = models.fold_batchnorm(model)
    with torch.inference_mode():
        got = model(x)
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert left == batchnorms - folded == unfoldable  # ResNet's one: the aux head, unused in forward
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_fold_batchnorm_undoes_a_fold_that_changes_the_output():
    class SkipBeforeNorm(torch.nn.Module):  # the conv output is also used by a sum the hooks cannot see
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = _with_trained_batchnorm(SkipBeforeNorm())
    assert models.fold_batchnorm(model) == 0
    assert isinstance(model.bn, torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="eval"):
        models.fold_batchnorm(SkipBeforeNorm().train())


def test_the_torch_free_name_lists_match_the_registry():
    from models.names import MODEL_NAMES, WEIGHTS_NAMES

    assert list(MODEL_NAMES) == models.list_models() and list(WEIGHTS_NAMES) == models.list_weights()
