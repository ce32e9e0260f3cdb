"""prepare-data stage: the KFP component (``component``) around the Beam job in ``x2vlm_core.dataprep``."""
