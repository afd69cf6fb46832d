"""The STYLEALIGN_REFERENCE socket type: a ReferenceTrajectory (a real image inverted for a model)."""

from comfy_api.latest import io

StyleAlignedReference = io.Custom("STYLEALIGN_REFERENCE")
