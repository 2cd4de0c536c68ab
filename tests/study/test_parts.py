"""Label parts of CIFAR-motion labels: the appearance half and the motion half scored separately."""

from __future__ import annotations

import pytest
import torch

from unidual.study.parts import collapsed, epoch_parts, motion_chance, part_accuracy, split_label

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


def test_collapse_is_the_motion_part_within_five_points_of_chance():
    assert motion_chance(CLASSES) == 50.0 and motion_chance(["a left", "a right", "a up"]) == pytest.approx(100 / 3)
    assert collapsed(55.0, CLASSES) and not collapsed(55.1, CLASSES)


def test_epoch_parts_average_each_epochs_train_records():
    records = [
        {"type": "train", "epoch": 0.5, "acc/vid": 10.0, "acc_class/vid": 40.0, "acc_motion/vid": 50.0},
        {"type": "train", "epoch": 1.0, "acc/vid": 20.0, "acc_class/vid": 60.0, "acc_motion/vid": 52.0},
        {"type": "val", "epoch": 1.0, "acc/vid": 99.0},
        {"type": "train", "epoch": 1.5, "acc/vid": 30.0},
        {"type": "train", "epoch": 1.5, "acc/img": 30.0},
    ]
    assert epoch_parts(records, "vid") == {
        1: {"clip": 15.0, "class": 50.0, "motion": 51.0},
        2: {"clip": 30.0},
    }
