"""x2vlm_core: the X²-VLM model library behind the pipeline stages.

It holds models, losses, data reading, training, metrics, checkpoint I/O, the prepare-data job
and the ``x2vlm`` CLI. It never imports kfp or kubernetes; apache_beam is imported only by
``x2vlm_core.dataprep.beam_job``, which is loaded when the job runs.
"""

# First, before anything imports torchvision, timm or transformers (see torchvision_guard).
from x2vlm_core import torchvision_guard

torchvision_guard.install()

__version__ = "0.1.0"
