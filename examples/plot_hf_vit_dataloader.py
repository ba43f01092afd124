"""
Archetypes of a Hugging Face ViT, fed by a DataLoader
======================================================

The analysis of Wedenborg et al. (NLDL 2026) on the kind of model and data users have: a
Hugging Face :class:`transformers.ViTForImageClassification` and a
:class:`torch.utils.data.Dataset` of ``(image, label)`` pairs behind a
:class:`~torch.utils.data.DataLoader`. :class:`~skarchetype.TorchLayerFeatures` reads the
CLS token of every encoder layer from the loader, batch by batch, without ever holding the
images as one array, and archetypes are fitted layer by layer.

To stay quick and offline, the ViT is small, randomly initialised from its config and
trained from scratch for a few epochs on :func:`sklearn.datasets.load_digits`, upsampled to
16 pixels and 3 channels. With a pretrained model (``ViTModel.from_pretrained(...)``) and an
image folder, only the first section changes.
"""

# %%
# A Dataset of (image, label), and a ViT trained briefly from scratch
# -------------------------------------------------------------------

# sphinx_gallery_thumbnail_number = 2
import re
import time

import matplotlib.pyplot as plt
import torch
import transformers
from torch.utils.data import DataLoader, Dataset

from skarchetype import ArchetypalAnalysis, TorchLayerFeatures
from skarchetype.demo._digits_models import load_digit_images
from skarchetype.inspection import archetype_purity, class_composition, nearest_samples
from skarchetype.plotting import plot_class_composition, plot_depth_profile, plot_exemplars

threads = torch.get_num_threads()
torch.set_num_threads(1)  # a tiny model: threads would cost more than they save


class Digits(Dataset):
    """The digits as 3-channel 16 x 16 images, made item by item as an image Dataset does."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = torch.as_tensor(self.images[index])  # (1, 8, 8) in [0, 1]
        image = image.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
        return (image.expand(3, 16, 16) - 0.5) / 0.5, int(self.labels[index])


images, labels = load_digit_images()
dataset = Digits(images, labels)

torch.manual_seed(0)
config = transformers.ViTConfig(
    image_size=16, patch_size=4, num_channels=3, hidden_size=48, num_hidden_layers=4,
    num_attention_heads=4, intermediate_size=96, num_labels=10,
)
model = transformers.ViTForImageClassification(config)
train_loader = DataLoader(dataset, batch_size=32, shuffle=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=6 * len(train_loader))
start = time.perf_counter()
model.train()
for _ in range(6):
    for batch, target in train_loader:
        loss = model(pixel_values=batch, labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
model.eval()
with torch.no_grad():
    predictions = torch.cat([model(pixel_values=batch).logits.argmax(1)
                             for batch, _ in DataLoader(dataset, batch_size=256)])
print(f"trained in {time.perf_counter() - start:.0f} s, training accuracy "
      f"{(predictions.numpy() == labels).mean():.3f}")

# %%
# The CLS token of every layer, from the DataLoader
# -------------------------------------------------
# The loader's batches are ``(images, labels)`` tuples: the first element is fed to the
# model, the labels are not read. The names of the encoder layers come from
# ``model.named_modules()`` (``vit.layers.<i>`` in transformers 5,
# ``vit.encoder.layer.<i>`` before). ``fit_transform`` reads the loader once.
layers = [name for name, _ in model.named_modules()
          if re.fullmatch(r"vit\.(encoder\.layer|layers)\.\d+", name)]
loader = DataLoader(dataset, batch_size=128)
features = TorchLayerFeatures(model, layers, pooling="cls")
activations = features.fit_transform(loader)
for layer, columns in features.layer_slices_.items():
    print(f"{layer:<12} output {features.layer_output_shapes_[layer]} -> "
          f"{columns.stop - columns.start} features")

# %%
# Archetypes per layer, and their class purity against depth
# ----------------------------------------------------------
# K = 10 archetypes at every layer. Purity is 1 when the 10 inputs closest to an archetype
# share one digit: it rises with depth as the classes separate.
models, purity = {}, {}
for layer, columns in features.layer_slices_.items():
    models[layer] = ArchetypalAnalysis(10, random_state=0).fit(activations[:, columns])
    purity[layer] = archetype_purity(models[layer].coefficients_, labels).mean()
    print(f"{layer:<12} explained variance {models[layer].explained_variance_:.3f}, "
          f"mean purity {purity[layer]:.3f}")

plot_depth_profile({"ViT": purity}, ylabel="mean archetype purity (10 nearest inputs)",
                   title="Class purity of the ViT's archetypes against depth (K = 10)")
plot_class_composition(
    {layer: class_composition(models[layer].coefficients_, labels)[0] for layer in layers},
    title="Mean coefficient of each archetype per digit, by layer",
)

# %%
# What the archetypes of the last layer look like
# -----------------------------------------------
# Each row: the digits closest to one archetype of the last encoder layer.
closest, _ = nearest_samples(models[layers[-1]].coefficients_, n_samples=8)
plot_exemplars(images[:, 0], closest,
               title=f"{layers[-1]}: the 8 inputs closest to each archetype")

torch.set_num_threads(threads)
plt.show()
