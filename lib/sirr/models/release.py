"""The authors' release of the LA network (github.com/zdlarr/Location-aware-SIRR): its checkpoint's key names.

:func:`release_key_map` maps each of the 169 tensors of the released ``model.pth`` to the attribute of
:class:`sirr.models.LocationAware` that holds it. It lives apart from the network, which names its parts after
the paper; :meth:`LocationAware.load_release_state_dict` and :meth:`~LocationAware.to_release_state_dict` use it.
"""

from __future__ import annotations

__all__ = ["release_key_map"]


def release_key_map() -> dict[str, str]:
    """Release key → our key for every tensor of the authors' ``model.pth`` (169 tensors, checkpoint order).

    The release's module names (left) come from its network class; ours (right) name what each part is
    in the paper. Built from three tables: single tensors, conv layers (weight + bias), and blocks.
    """
    keys: dict[str, str] = {"lap_pyramid.kernel": "mlsm.kernel"}

    def layer(rel: str, ours: str) -> None:
        keys[f"{rel}.weight"] = f"{ours}.weight"
        keys[f"{rel}.bias"] = f"{ours}.bias"

    def se_block(rel: str, ours: str, prelu: bool) -> None:
        keys[f"{rel}.conv1.conv2d.weight"] = f"{ours}.conv1.weight"
        if prelu:
            keys[f"{rel}.conv1.act.weight"] = f"{ours}.act.weight"
        keys[f"{rel}.conv2.conv2d.weight"] = f"{ours}.conv2.weight"
        layer(f"{rel}.se_layer.se.0", f"{ours}.se.fc1")
        layer(f"{rel}.se_layer.se.2", f"{ours}.se.fc2")

    def cbam_block(rel: str, ours: str) -> None:
        keys[f"{rel}.conv1.conv2d.weight"] = f"{ours}.conv1.weight"
        keys[f"{rel}.conv2.conv2d.weight"] = f"{ours}.conv2.weight"
        keys[f"{rel}.cbam_layer.channel_layer.fc_1.weight"] = f"{ours}.channel_attention.fc1.weight"
        keys[f"{rel}.cbam_layer.channel_layer.fc_2.weight"] = f"{ours}.channel_attention.fc2.weight"
        keys[f"{rel}.cbam_layer.spatial_layer.conv.weight"] = f"{ours}.spatial_attention.conv.weight"

    layer("det_conv0.0", "image_in")
    for i, rel in enumerate(("det_conv1", "det_conv2", "det_conv3", "det_conv4", "det_conv4_1", "det_conv4_2")):
        se_block(rel, f"image_blocks.{i}", prelu=False)
    layer("det_conv5.0", "laplacian_in")
    keys["det_conv5.1.weight"] = "laplacian_in_act.weight"
    for i in range(3):
        se_block(f"det_conv{6 + i}", f"laplacian_blocks.{i}", prelu=True)
    for i in range(3):
        se_block(f"det_conv{9 + i}", f"suppression_blocks.{i}", prelu=True)
    keys["p_relu.weight"] = "shared_prelu.weight"
    layer("det_conv_mask0.0", "rcmap_head.0")
    layer("det_conv_mask0.2", "rcmap_head.2")
    for rel, ours in (("conv_i", "input_gate"), ("conv_f", "forget_gate"), ("conv_g", "cell_gate"), ("conv_o", "output_gate")):
        layer(f"{rel}.0", f"lstm.{ours}")
    layer("det_conv_mask1.0", "reflection_head.0")
    layer("det_conv_mask1.2", "reflection_head.2")
    g_t = "transmission_net"
    for rel, ours in (
        ("conv1", "conv_in"), ("conv2", "down_half"), ("conv3", "conv_half"), ("conv4", "down_quarter"),
        ("conv5", "conv_quarter.0"), ("conv6", "conv_quarter.1"),
        ("diconv1", "dilated.0"), ("diconv2", "dilated.1"), ("diconv3", "dilated.2"), ("diconv4", "dilated.3"),
        ("conv7", "bottleneck.0"), ("conv8", "bottleneck.1"),
        ("deconv1", "up_half.deconv"), ("conv9", "conv_up_half"), ("deconv2", "up_full.deconv"),
        ("conv10", "conv_up_full"), ("outframe1", "out_quarter"), ("outframe2", "out_half"), ("output", "out_full"),
    ):
        layer(f"{rel}.0", f"{g_t}.{ours}")
    for rel, ours in (
        ("cbam_block0", "cbam_full.0"), ("cbam_block1", "cbam_half.0"), ("cbam_block2", "cbam_half.1"),
        ("cbam_block3", "cbam_quarter.0"), ("cbam_block4", "cbam_quarter.1"), ("cbam_block5", "cbam_quarter.2"),
    ):
        cbam_block(rel, f"{g_t}.{ours}")
    return keys
