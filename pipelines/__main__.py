"""`python -m pipelines ...`: see pipelines/submit.py."""

import sys

from pipelines.submit import main

sys.exit(main())
