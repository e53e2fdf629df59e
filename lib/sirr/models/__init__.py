"""Networks: ``LocationAware`` (Dong et al. 2021) and ``TwoStage`` (Li & Lun 2019), one file each."""

from sirr.models.location_aware import LocationAware, LocationAwareOutput, LocationAwareDiscriminator

__all__ = [
    "LocationAware",
    "LocationAwareOutput",
    "LocationAwareDiscriminator",
]
