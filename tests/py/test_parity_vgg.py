"""The lecture's VGG layers at 224x224 (64x64 under valgrind: torch_ref.SIDE)
against PyTorch: one seed each (they are heavy); VGG16 weights in the legacy
.pth format of torchvision's own files."""
import pytest

from test_parity import check_model
from torch_ref import SIDE


@pytest.mark.parametrize("arch,fmt,layer,nodes", [
    ("vgg16", "legacy", "features.30", ["features.29", "features.30", "classifier.4"]),
    ("vgg19", "zip", "features.35", ["features.35", "avgpool"]),
])
def test_vgg_imagenet_size(cnnlens_bin, arch, fmt, layer, nodes):
    check_model(cnnlens_bin, arch, 0, SIDE, fmt, nodes, [layer])
