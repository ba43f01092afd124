"""Tiny randomly initialised Hugging Face models, built from configs: nothing is downloaded."""

import pytest
import torch

transformers = pytest.importorskip("transformers")


def tiny_vit(seed=0):
    """A ViT on 16-pixel RGB images: 16 patches of 4 x 4 and a CLS token, width 32."""
    torch.manual_seed(seed)
    config = transformers.ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37,
    )
    return transformers.ViTModel(config).eval()


def tiny_bert(seed=0):
    """A BERT-style text encoder: 100 tokens, width 32, sequences of up to 64 tokens."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64,
    )
    return transformers.BertModel(config).eval()


def tiny_resnet(seed=0):
    """A two-stage ResNet on RGB images (8 and 16 channels)."""
    torch.manual_seed(seed)
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]
    )
    return transformers.ResNetModel(config).eval()


def tiny_swin(seed=0):
    """A two-stage Swin transformer on 16-pixel RGB images, windows of 2 x 2 patches."""
    torch.manual_seed(seed)
    config = transformers.SwinConfig(
        image_size=16, patch_size=2, num_channels=3, embed_dim=8, depths=[1, 1],
        num_heads=[2, 2], window_size=2,
    )
    return transformers.SwinModel(config).eval()
