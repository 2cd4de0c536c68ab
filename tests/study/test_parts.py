"""Label parts of CIFAR-motion labels: the appearance half and the motion half scored separately."""

from __future__ import annotations

import pytest
import torch

from unidual.study.parts import part_accuracy, split_label

CLASSES = ["cat left", "cat zoom_in", "dog left", "dog zoom_in"]


def test_split_label_takes_the_last_word_as_motion():
    assert split_label("automobile zoom_in") == ("automobile", "zoom_in")
    assert split_label("pickup truck left") == ("pickup truck", "left")
    with pytest.raises(ValueError, match="'cat' is not '<class> <motion>'"):
        split_label("cat")


def test_part_accuracy_counts_each_half():
    labels = torch.tensor([0, 1, 2, 3])
    # right; right class wrong motion; wrong class right motion; wrong both
    predictions = torch.tensor([0, 0, 0, 0])
    acc = part_accuracy(predictions, labels, CLASSES)
    assert acc == {"both": 25.0, "class": 50.0, "motion": 50.0}
    with pytest.raises(ValueError, match="no examples"):
        part_accuracy(torch.tensor([]), torch.tensor([]), CLASSES)
