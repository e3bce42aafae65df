"""Neural-network building blocks shared by the learned deblurring methods (NAFNet, RDDM, JDRL,
MBSD), so that each method's plugin holds only what is its own."""

from deblurbench.nn.deform import DeformConv2d, ModulatedDeformConv, choose_impl
from deblurbench.nn.ema import EMA
from deblurbench.nn.layers import (
    Downsample,
    LayerNorm2d,
    NAFBlock,
    PixelShuffleDown,
    SimpleGate,
    SimplifiedChannelAttention,
    Upsample,
)
from deblurbench.nn.losses import CharbonnierLoss, charbonnier
from deblurbench.nn.nafnet import NAFNet, count_parameters
from deblurbench.nn.state import load_trainable_state_dict, trainable_state_dict

__all__ = [
    "load_trainable_state_dict",
    "trainable_state_dict",
    "EMA",
    "CharbonnierLoss",
    "DeformConv2d",
    "Downsample",
    "LayerNorm2d",
    "ModulatedDeformConv",
    "NAFBlock",
    "NAFNet",
    "PixelShuffleDown",
    "SimpleGate",
    "SimplifiedChannelAttention",
    "Upsample",
    "charbonnier",
    "choose_impl",
    "count_parameters",
]
