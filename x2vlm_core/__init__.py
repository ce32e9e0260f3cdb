"""x2vlm_core: the X²-VLM model library behind the pipeline stages.

It holds models, losses, data reading, training, metrics, checkpoint I/O and the
``x2vlm`` CLI. It never imports kfp, kubernetes or apache_beam.
"""

# First, before anything imports torchvision, timm or transformers (see torchvision_guard).
from x2vlm_core import torchvision_guard

torchvision_guard.install()

__version__ = "0.1.0"
