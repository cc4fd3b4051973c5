"""Data augmentation on digits: the effect of each augmentation on generalization.

The lectures (lecture 8): augmentation adds the invariances we believe the task has, so the model
generalizes from fewer examples — and an augmentation that breaks the label's meaning hurts. Here
scikit-learn's 8×8 digits (1,294 training, 144 validation, 359 test images; ``dlcore.data``'s fixed
stratified split), a small CNN (``simple_cnn``: conv 16 → pool → conv 32 → pool → linear head, no
normalization), Adam 1e-3, batch 64, 3000 steps. Axis ``augment`` (structural, one program each):
none; a random shift of up to one pixel (``crop``: pad 1, crop 8×8); left-right flips (``flip``,
probability ½ — a mirrored 2 or 7 is not a digit); random brightness (±0.5 on the standardized
pixels); random contrast (×0.6…1.4); and shift + contrast together (``config.augment`` in
``dlcore/cli/_build.py``; options in ``config.augment_options``). Every point is tested on the
test split; the checks: the shift helps, the flip hurts.

Caveat of the setup (found after the first full run, left as it is so the run stays the study's):
the images are standardized per pixel (``config.dataset.standardize=True``) *before* the
augmentations, so the shift moves a pixel under another pixel's mean and scale and pads with 0 =
the mean value, not the blank background. To augment raw pixels instead (the shift then pads
with background): ``--config.dataset.standardize=False``, or ``="channel"`` for one mean and scale.
Run:

    dlcore run augmentation
    dlcore report runs/augmentation/<timestamp>

Faster look: dlcore run augmentation --config.num_steps=1000 --config.sweep.seeds=4
Larger net, longer: --config.model.channels="(32,64)" --config.num_steps=6000
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(learning_rate=1e-3), batch_size=64, num_steps=3000, augment="none",
                    augment_options=dict(crop=dict(padding=1), flip=dict(prob=0.5),
                                         brightness=dict(max_delta=0.5), contrast=dict(lower=0.6, upper=1.4)))
    c.dataset.name = "digits"
    c.model = ml_collections.ConfigDict(dict(name="mlp", widths=(256,), activation="relu", norm="none"))
    c.sweep = study(
        dict(augment=dict(path="augment", values=("none", "crop", "flip", "brightness", "contrast",
                                                    "crop+contrast"))),
        select=dict(group_by=("augment",)),  # every augmentation is tested; nothing is chosen
    )
    c.claim = dict(
        text="On digits a one-pixel random shift improves test accuracy; left-right flips (which do not "
             "preserve a digit's identity) lower it",
        checks=(
            "test/accuracy: augment=crop > augment=none",
            "test/accuracy: augment=flip < augment=none",
        ),
    )
    return c
