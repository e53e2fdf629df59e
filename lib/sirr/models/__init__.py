"""Networks: ``LocationAware`` (Dong et al. 2021) and ``TwoStage`` (Li & Lun 2019), one file each."""

from sirr.models.location_aware import LocationAware, LocationAwareOutput, LocationAwareDiscriminator
from sirr.models.two_stage import (
    TwoStage,
    TwoStageOutput,
    UNet,
    WGANDiscriminator,
    confidence_map,
    edge_sets,
    gradient_magnitude,
    two_means_threshold,
)

__all__ = [
    "LocationAware",
    "LocationAwareOutput",
    "LocationAwareDiscriminator",
    "TwoStage",
    "TwoStageOutput",
    "UNet",
    "WGANDiscriminator",
    "confidence_map",
    "two_means_threshold",
    "edge_sets",
    "gradient_magnitude",
]
