"""A deliberately tiny five-class flower classifier.

This network is not trained and is not meant to be accurate: its weights
are drawn from a fixed random seed by ``export.py tiny-flowers``. It exists
so that the petal service can be tested with a second model whose input
size, label set and normalisation differ from EfficientNet-Lite0, which
shows that the service takes everything it needs from the ONNX metadata.

It also doubles as the example of a "model definition file" for
``export.py custom``: any module that defines an ``nn.Module`` subclass
mapping ``[N, 3, H, W]`` float images to ``[N, num_classes]`` logits works
the same way.
"""

from torch import Tensor, nn

#: Class names in output-index order.
FLOWER_LABELS = ["daisy", "dandelion", "rose", "sunflower", "tulip"]


class TinyFlowerNet(nn.Module):
    """Two strided 3x3 convolutions, global average pooling and a linear head."""

    def __init__(self, num_classes: int = len(FLOWER_LABELS), width: int = 8) -> None:
        """Create the layers.

        Args:
            num_classes: number of output logits.
            width: channels of the first convolution; the second has twice as many.
        """
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """Map a normalised ``[N, 3, H, W]`` batch to ``[N, num_classes]`` logits."""
        features = self.pool(self.features(images))
        return self.classifier(features.flatten(1))
