"""Tiny Hugging Face ``transformers`` models built from configs: random weights, nothing
downloaded. Each builder seeds torch first and returns the model in eval mode."""

import torch
import transformers


def tiny_vit(seed=0):
    """ViT with a class token: 16x16 images, 4x4 patches (16 patch tokens + CLS), width 32."""
    torch.manual_seed(seed)
    config = transformers.ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=37,
    )
    return transformers.ViTModel(config).eval()


def tiny_bert(seed=0):
    """BERT encoder: vocabulary of 100 tokens, width 32, up to 64 positions."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64,
    )
    return transformers.BertModel(config).eval()


def tiny_resnet(seed=0):
    """ResNet with two stages of 8 and 16 channels."""
    torch.manual_seed(seed)
    config = transformers.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]
    )
    return transformers.ResNetModel(config).eval()


def tiny_swin(seed=0):
    """Swin (no class token): 16x16 images, 2x2 patches, two stages."""
    torch.manual_seed(seed)
    config = transformers.SwinConfig(
        image_size=16, patch_size=2, num_channels=3, embed_dim=8, depths=[1, 1],
        num_heads=[2, 2], window_size=2,
    )
    return transformers.SwinModel(config).eval()
