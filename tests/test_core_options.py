"""The one options object and its defaults policy, in the core: what the node's "auto" inputs stand for."""

import math

import pytest

from stylealign_core import StyleAlignedOptions
from stylealign_core.share_flags import ShareFlags, share_flags
from stylealign_core.transformer.families.flux import FluxFamily
from stylealign_core.transformer.sharing_policy import transformer_sharing

COUNTS = {"double": 3, "single": 4}


def test_auto_key_scale_is_the_familys_default_and_a_set_value_wins():
    family = FluxFamily()
    assert transformer_sharing(StyleAlignedOptions(), family, COUNTS).key_scale == family.default_key_scale
    assert transformer_sharing(StyleAlignedOptions(reference_key_scale=1.7), family, COUNTS).key_scale == 1.7


@pytest.mark.parametrize("strength, shift, shares", [(1.0, 0.0, True), (2.0, math.log(2.0), True), (0.5, math.log(0.5), True), (0.0, 0.0, False)])
def test_logit_shift_rule(strength, shift, shares):
    sharing = transformer_sharing(StyleAlignedOptions(reference_strength=strength), FluxFamily(), COUNTS)
    assert sharing.logit_shift == pytest.approx(shift, abs=0)
    assert sharing.flags.share is shares  # strength 0: the reference's tokens are not appended at all


def test_no_logit_shift_without_sharing():
    options = StyleAlignedOptions(reference_strength=3.0, share_attention=False)
    sharing = transformer_sharing(options, FluxFamily(), COUNTS)
    assert sharing.logit_shift == 0.0 and not sharing.flags.share


def test_node_choices_reach_the_sharing():
    options = StyleAlignedOptions(transformer_blocks="double", shift_reference_positions=False, shared_layer_fraction=1.0,
                                  adain_queries=False, adain_values=True)
    sharing = transformer_sharing(options, FluxFamily(), COUNTS)
    assert sharing.shared_blocks == {("double", i) for i in range(3)}
    assert sharing.position_shift is False
    assert sharing.flags == ShareFlags(adain_queries=False, adain_keys=True, adain_values=True, share=True)
    assert share_flags(options) == sharing.flags
