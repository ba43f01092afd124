"""
Layer-wise archetypes of a text encoder's sentence embeddings
=============================================================

Archetypal analysis of a BERT-style encoder, layer by layer: each layer's sentence
embedding (the mean of its token states over the real tokens, padding left out) is
written as a mixture of archetypes, and we ask which topics each archetype gathers and
how that changes with depth.

The encoder is a tiny :class:`transformers.BertModel` built from a config (nothing is
downloaded), trained for a few seconds to tell the topic of made-up sentences: a
vocabulary of 3 topics of 12 words each, and 20 filler words shared by all topics. The
same code runs on any Hugging Face text encoder and its tokenizer's output.
"""

# %%
# Made-up sentences and a tiny BERT
# ---------------------------------

# sphinx_gallery_thumbnail_number = 2
import numpy as np
import torch
import transformers
from torch import nn

from skarchetype import ArchetypalAnalysis, TorchLayerFeatures
from skarchetype.inspection import archetype_purity, class_composition
from skarchetype.plotting import plot_class_composition, plot_depth_profile

threads = torch.get_num_threads()
torch.set_num_threads(1)  # a tiny network: one thread is faster than several

PAD, CLS, N_TOPICS, TOPIC_WORDS, FILLERS, MAX_LENGTH = 0, 1, 3, 12, 20, 16
VOCABULARY = 2 + N_TOPICS * TOPIC_WORDS + FILLERS


def sentences(n, rng):
    """A tokenizer-style dict of token ids (n, MAX_LENGTH) padded with PAD and their
    attention masks, and the topic of each sentence."""
    topics = rng.integers(N_TOPICS, size=n)
    ids = np.full((n, MAX_LENGTH), PAD)
    for row, topic in enumerate(topics):
        length = rng.integers(4, MAX_LENGTH)
        topical = rng.random(length - 1) < 0.4
        words = np.where(
            topical,
            2 + topic * TOPIC_WORDS + rng.integers(TOPIC_WORDS, size=length - 1),
            2 + N_TOPICS * TOPIC_WORDS + rng.integers(FILLERS, size=length - 1),
        )
        ids[row, : length] = [CLS, *words]
    batch = {"input_ids": torch.from_numpy(ids),
             "attention_mask": torch.from_numpy((ids != PAD).astype(np.int64))}
    return batch, topics


rng = np.random.default_rng(0)
train, train_topics = sentences(1500, rng)
held_out, topics = sentences(600, rng)

torch.manual_seed(0)
bert = transformers.BertModel(transformers.BertConfig(
    vocab_size=VOCABULARY, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=MAX_LENGTH,
))

# %%
# Training the encoder to tell the topics
# ---------------------------------------
# A linear head on the sentence embedding of the last layer, the mean of its token
# states over the real tokens, learns the topic; the encoder learns with it.
head = nn.Linear(bert.config.hidden_size, N_TOPICS)


def topic_logits(batch):
    states = bert(**batch).last_hidden_state
    weights = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    return head((states * weights).sum(dim=1) / weights.sum(dim=1))


optimizer = torch.optim.Adam([*bert.parameters(), *head.parameters()], lr=3e-3)
targets = torch.from_numpy(train_topics)
bert.train()
for _ in range(150):
    rows = torch.from_numpy(rng.integers(len(targets), size=64))
    loss = nn.functional.cross_entropy(
        topic_logits({key: value[rows] for key, value in train.items()}), targets[rows]
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
bert.eval()
with torch.no_grad():
    accuracy = (topic_logits(held_out).argmax(dim=1).numpy() == topics).mean()
print(f"held-out topic accuracy {accuracy:.3f}")

# %%
# Sentence embeddings of every layer
# ----------------------------------
# :class:`~skarchetype.TorchLayerFeatures` takes the tokenizer-style dict as it is and
# calls ``bert(**batch)`` on each batch of its rows: the token ids reach the model as
# integers. ``pooling="mean"`` averages each layer's token states over the tokens that
# the batch's ``attention_mask`` keeps, so the padding is left out. A
# :class:`~torch.utils.data.DataLoader` of such dict batches (a tokenized dataset, say)
# is read the same way.
layers = ("embeddings", *(f"encoder.layer.{index}" for index in range(3)))
features = TorchLayerFeatures(bert, layers, pooling="mean").fit(held_out)
activations = features.transform(held_out)
names = ["embeddings"] + [f"layer {index}" for index in range(1, len(layers))]
by_layer = {name: activations[:, features.layer_slices_[layer]]
            for name, layer in zip(names, layers, strict=True)}

# %%
# Archetypes of each layer, and the topics they gather
# ----------------------------------------------------
# Four archetypes per layer. The class composition of an archetype is the mean
# coefficient of the sentences of each topic; its purity is 1 when the sentences closest
# to it share one topic. The embeddings mix topic and filler words; the encoder's layers
# gather each topic in archetypes of their own.
compositions, purity = {}, {}
for name, X in by_layer.items():
    aa = ArchetypalAnalysis(n_archetypes=4, random_state=0).fit(X)
    compositions[name] = class_composition(aa.coefficients_, topics)[0]
    purity[name] = archetype_purity(aa.coefficients_, topics).mean()
    print(f"{name:<11} explained variance {aa.explained_variance_:.3f}, "
          f"mean purity {purity[name]:.3f}")

plot_class_composition(compositions, classes=[f"topic {t}" for t in range(N_TOPICS)],
                       title="Mean coefficient of each archetype per topic")
plot_depth_profile(purity, ylabel="mean archetype purity",
                   title="Topic purity of the archetypes against depth (K = 4)")
torch.set_num_threads(threads)
