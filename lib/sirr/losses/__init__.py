"""Losses of both papers: LA (Dong et al. 2021, Eq. 6-16) and TS (Li & Lun 2019, Eq. 2-4, 7-8).

``vgg`` holds the frozen VGG-19 feature extractor both use; the losses take plain tensors (lists of
per-iteration predictions for LA), never model objects.
"""

from sirr.losses.location_aware import (
    LocationAwareLoss,
    LocationAwarePredictions,
    LossInputError,
    adversarial_loss,
    binary_rcmap_target,
    composition_loss,
    discriminator_loss,
    gamma_inverse,
    iteration_weighted,
    mix_loss,
    perceptual_loss,
    pixel_loss,
    rcmap_bce_loss,
    rcmap_composition_loss,
    residual_loss,
    ssim_loss,
)
from sirr.losses.two_stage import (
    clip_critic_weights,
    critic_loss,
    feature_reduction_loss,
    initial_loss,
    reconstruction_loss,
    stage2_generator_loss,
    two_stage_vgg,
)
from sirr.losses.vgg import VGG19Features, VGGWeightsUnavailable

__all__ = [
    "VGG19Features",
    "VGGWeightsUnavailable",
    "LossInputError",
    "iteration_weighted",
    "gamma_inverse",
    "rcmap_composition_loss",
    "residual_loss",
    "composition_loss",
    "perceptual_loss",
    "pixel_loss",
    "ssim_loss",
    "mix_loss",
    "adversarial_loss",
    "discriminator_loss",
    "binary_rcmap_target",
    "rcmap_bce_loss",
    "LocationAwarePredictions",
    "LocationAwareLoss",
    "two_stage_vgg",
    "reconstruction_loss",
    "feature_reduction_loss",
    "initial_loss",
    "stage2_generator_loss",
    "critic_loss",
    "clip_critic_weights",
]
