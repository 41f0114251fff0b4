"""Weight initialisation shared by the encoders (2-D and 3-D alike)."""

from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def init_conv_bn_(module: nn.Module) -> None:
    """He initialisation for convolutions followed by ReLU, identity for batch norms: what torchvision's
    ResNets do, applied to our own widths since the encoders are trained from scratch."""
    for m in module.modules():
        if isinstance(m, _CONVS):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, _NORMS):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
