"""Real-video data: sampling against mmaction2, PyAV decoding, transforms, datasets, loaders.

Videos are encoded with PyAV by the fixtures in conftest.py: frame ``i`` is a uniform gray of
``i * gray_step``, so the frame indices a dataset sampled can be read back from its output.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from videos import video_list_data, write_list

from runners.data.datasets import DataConfig, build_datasets, build_loader
from runners.data.sampling import sample_frame_indices
from runners.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipPipeline,
    center_crop_offsets,
    hflip,
    normalize,
    random_crop_offsets,
    rescale_short_side,
    three_crop_offsets,
    to_clips,
    transform_frames_flip,
)
from runners.data.video import ClassFolderDataset, CorruptVideoWarning, VideoListDataset
from runners.data.video_reader import VideoDecodeError, VideoReader, probe_video, read_frames
from search_space.errors import ConfigError

av = pytest.importorskip("av")

CLIP_LEN = 4


def transform_frames(frames: np.ndarray, **settings: Any) -> torch.Tensor:
    """The clips of :func:`transform_frames_flip`, without whether they were flipped."""
    return transform_frames_flip(frames, **settings)[0]


def ids_of(frames: np.ndarray, step: int) -> np.ndarray:
    """Frame index encoded in each uint8 frame ``(N, H, W, 3)``."""
    return np.rint(frames.reshape(len(frames), -1).mean(axis=1) / step).astype(np.int64)


def clip_ids(clip: torch.Tensor, step: int) -> np.ndarray:
    """Frame indices in a normalised clip ``(C, T, H, W)``, after undoing the normalisation."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    gray = (clip * std + mean).mean(dim=(0, 2, 3)).numpy()
    return np.rint(gray / step).astype(np.int64)


def pipeline(*, test_mode: bool, num_clips: int = 1, interval: int = 2) -> ClipPipeline:
    return ClipPipeline(
        test_mode=test_mode,
        clip_len=CLIP_LEN,
        frame_interval=interval,
        num_clips=num_clips,
        crop_size=32,
        short_side=36,
    )


@pytest.fixture(scope="module")
def videos(make_video) -> dict[str, Path]:
    """Three h264 videos of different lengths (one shorter than a clip) and one mpeg4."""
    return {
        "a": make_video("a.mp4", 40),
        "b": make_video("b.mp4", 24),
        "short": make_video("short.mp4", 3),
        "m": make_video("m.avi", 30, codec="mpeg4"),
    }


# -- sampling: mmaction2's SampleFrames --------------------------------------------------------

GRID = list(itertools.product((1, 3, 7, 16, 33), (1, 4, 8), (1, 2, 3), (1, 2, 5)))


@pytest.mark.parametrize("out_of_bound", ["loop", "repeat_last"])
def test_test_sampling_equals_mmaction2(mmaction_loading, out_of_bound):
    for num_frames, clip_len, interval, num_clips in GRID:
        ref = mmaction_loading.SampleFrames(
            clip_len=clip_len,
            frame_interval=interval,
            num_clips=num_clips,
            test_mode=True,
            out_of_bound_opt=out_of_bound,
        ).transform({"total_frames": num_frames, "start_index": 0})["frame_inds"]
        ours = sample_frame_indices(
            num_frames,
            clip_len=clip_len,
            frame_interval=interval,
            num_clips=num_clips,
            test_mode=True,
            out_of_bound=out_of_bound,
        )
        assert ours.shape == (num_clips, clip_len)
        np.testing.assert_array_equal(ours.ravel(), ref, err_msg=str((num_frames, clip_len)))


def test_train_sampling_has_mmaction2_support(mmaction_loading):
    """Same set of possible outputs as mmaction2 (its RNG is global NumPy, ours a Generator)."""
    rng = np.random.default_rng(0)
    np.random.seed(0)
    for num_frames, clip_len, interval, num_clips in itertools.product(
        (3, 9, 20), (2, 4), (1, 3), (1, 2)
    ):
        ref = mmaction_loading.SampleFrames(
            clip_len=clip_len, frame_interval=interval, num_clips=num_clips
        )
        theirs = {
            tuple(ref.transform({"total_frames": num_frames, "start_index": 0})["frame_inds"])
            for _ in range(400)
        }
        ours = {
            tuple(
                sample_frame_indices(
                    num_frames,
                    clip_len=clip_len,
                    frame_interval=interval,
                    num_clips=num_clips,
                    test_mode=False,
                    rng=rng,
                ).ravel()
            )
            for _ in range(400)
        }
        assert ours == theirs, (num_frames, clip_len, interval, num_clips)


def _their_inds(loading, num_frames, fps=None, **kwargs):
    results = {"total_frames": num_frames, "start_index": 0}
    if fps is not None:
        results["avg_fps"] = fps
    return loading.SampleFrames(**kwargs).transform(results)["frame_inds"]


@pytest.mark.parametrize("option", ["twice_sample", "target_fps"])
def test_test_sampling_options_equal_mmaction2(mmaction_loading, option):
    rates = [(25.0, 15), (30.0, 30), (12.5, 25), (None, 10)] if option == "target_fps" else [None]
    for (num_frames, clip_len, interval, num_clips), rate in itertools.product(GRID, rates):
        if option == "twice_sample" and num_clips == 1 and clip_len > 1:
            continue  # mmaction2 divides by zero there; ours refuses (tested below)
        kwargs = {"twice_sample": True} if option == "twice_sample" else {"target_fps": rate[1]}
        fps = rate[0] if rate else None
        ref = _their_inds(
            mmaction_loading, num_frames, fps, clip_len=clip_len, frame_interval=interval,
            num_clips=num_clips, test_mode=True, **kwargs,
        )  # fmt: skip
        ours = sample_frame_indices(
            num_frames, clip_len=clip_len, frame_interval=interval, num_clips=num_clips,
            test_mode=True, fps=fps, **kwargs,
        )  # fmt: skip
        clips = 2 * num_clips if option == "twice_sample" else num_clips
        assert ours.shape == (clips, clip_len)
        np.testing.assert_array_equal(
            ours.ravel(), ref, err_msg=str((num_frames, clip_len, interval, num_clips, rate))
        )


@pytest.mark.parametrize(
    "options",
    [{"keep_tail_frames": True}, {"target_fps": 15}, {"keep_tail_frames": True, "target_fps": 12}],
    ids=["keep_tail_frames", "target_fps", "both"],
)
def test_train_sampling_options_have_mmaction2_support(mmaction_loading, options):
    """Same set of possible outputs as mmaction2 for the training-only options.

    Fractional segments make some outputs rare (about 1 in 100), hence the many draws; both
    generators are seeded, so the result does not change between runs.
    """
    DRAWS = 2500  # noqa: N806
    rng = np.random.default_rng(0)
    np.random.seed(0)
    for num_frames, clip_len, interval, num_clips in itertools.product(
        (3, 9, 14), (2, 4), (1, 2), (1, 2)
    ):
        fps = 25.0 if "target_fps" in options else None
        args = {"clip_len": clip_len, "frame_interval": interval, "num_clips": num_clips}
        theirs = {
            tuple(_their_inds(mmaction_loading, num_frames, fps, **args, **options))
            for _ in range(DRAWS)
        }
        ours = {
            tuple(
                sample_frame_indices(
                    num_frames, test_mode=False, rng=rng, fps=fps, **args, **options
                ).ravel()
            )
            for _ in range(DRAWS)
        }
        assert ours == theirs, (num_frames, clip_len, interval, num_clips)


@pytest.mark.parametrize(
    ("num_frames", "interval", "num_clips"), [(40, 3, 2), (10, 2, 1), (7, 4, 3)]
)
def test_temporal_jitter_per_frame_values_equal_mmaction2(
    mmaction_loading, num_frames, interval, num_clips
):
    """Jitter moves each frame by 0..interval-1 independently. On deterministic test offsets
    (mmaction2 jitters test clips too) each position takes the same set of values in both."""
    rng = np.random.default_rng(1)
    args = {"clip_len": 4, "frame_interval": interval, "num_clips": num_clips}
    theirs = np.stack(
        [
            _their_inds(mmaction_loading, num_frames, temporal_jitter=True, test_mode=True, **args)
            for _ in range(300)
        ]
    )
    ours = np.stack(
        [
            sample_frame_indices(
                num_frames, temporal_jitter=True, test_mode=True, rng=rng, **args
            ).ravel()
            for _ in range(300)
        ]
    )
    for position in range(ours.shape[1]):
        assert set(ours[:, position]) == set(theirs[:, position]), position
    assert len(set(ours[:, 0])) == min(interval, num_frames)  # the jitter really varies


def test_sampling_option_combinations_mmaction2_cannot_run_are_refused():
    with pytest.raises(ValueError, match="twice_sample needs num_clips >= 2"):
        sample_frame_indices(40, clip_len=4, num_clips=1, test_mode=True, twice_sample=True)
    with pytest.raises(ValueError, match="temporal_jitter cannot be combined with target_fps"):
        sample_frame_indices(
            40, clip_len=4, test_mode=False, rng=np.random.default_rng(0),
            temporal_jitter=True, target_fps=10,
        )  # fmt: skip
    with pytest.raises(ValueError, match="rng is required"):
        sample_frame_indices(40, clip_len=4, test_mode=True, temporal_jitter=True)
    with pytest.raises(ValueError, match="target_fps must be > 0"):
        sample_frame_indices(40, clip_len=4, test_mode=True, target_fps=0)


@pytest.mark.parametrize(
    ("expected", "num_frames", "clip_len", "interval", "num_clips"),
    [
        ([[16, 18, 20, 22]], 40, 4, 2, 1),  # centred: (40 - 7) // 2 = 16
        ([[0, 1, 2, 0, 1]], 3, 5, 1, 1),  # short video loops
        ([[0, 2, 4, 6], [33, 35, 37, 39]], 40, 4, 2, 2),  # first and last possible offsets
    ],
)
def test_test_sampling_table(expected, num_frames, clip_len, interval, num_clips):
    got = sample_frame_indices(
        num_frames,
        clip_len=clip_len,
        frame_interval=interval,
        num_clips=num_clips,
        test_mode=True,
    )
    np.testing.assert_array_equal(got, expected)


def test_train_offsets_cover_the_whole_range_and_are_seeded():
    # 40 frames, 4 x 2: avg_interval = 40 - 8 + 1 = 33, so offsets 0..32 are all reachable.
    starts = {
        int(sample_frame_indices(40, clip_len=4, frame_interval=2, test_mode=False, rng=rng)[0, 0])
        for rng in (np.random.default_rng(s) for s in range(600))
    }
    assert starts == set(range(33))
    a = sample_frame_indices(
        40, clip_len=4, num_clips=3, test_mode=False, rng=np.random.default_rng(7)
    )
    b = sample_frame_indices(
        40, clip_len=4, num_clips=3, test_mode=False, rng=np.random.default_rng(7)
    )
    np.testing.assert_array_equal(a, b)


def test_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rng"):
        sample_frame_indices(10, clip_len=2, test_mode=False)
    with pytest.raises(ValueError, match="clip_len"):
        sample_frame_indices(10, clip_len=0, test_mode=True)
    with pytest.raises(ValueError, match="out_of_bound"):
        sample_frame_indices(10, clip_len=2, test_mode=True, out_of_bound="clamp")  # type: ignore[arg-type]


# -- decoding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "name", "options"),
    [
        ("libx264", "seek.mp4", {"g": "6", "bf": "3"}),  # B-frames: decode order != display
        ("libx264", "seek.mkv", {"g": "5", "bf": "2"}),  # no frame count in the header
        ("mpeg4", "seek.avi", {"g": "7"}),
    ],
)
def test_reader_returns_exactly_the_requested_frames(
    tmp_path, gray_step, encode_video, codec, name, options
):
    path = encode_video(tmp_path / name, 40, codec=codec, options=options)
    container = av.open(str(path))
    reference = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    container.close()
    np.testing.assert_array_equal(ids_of(reference, gray_step), np.arange(40))
    rng = np.random.default_rng(0)
    with VideoReader(str(path)) as reader, VideoReader(str(path), seek=False) as slow:
        assert reader.num_frames == slow.num_frames == 40
        for _ in range(15):
            inds = rng.integers(0, 40, size=int(rng.integers(1, 12)))
            np.testing.assert_array_equal(reader.read(inds), reference[inds])
            np.testing.assert_array_equal(slow.read(inds), reference[inds])
        assert reader.read([39, 0, 39]).shape == (3, 48, 64, 3)
        assert reader.fallbacks == 0  # the seeking path did the work
        assert len(reader._runs([0, 39])) == 2  # far apart: one seek each
        assert len(reader._runs(list(range(0, 40, 2)))) == 1  # dense: through the keyframes
        with pytest.raises(IndexError, match="40"):
            reader.read([40])


def test_probe_and_read_frames(videos, gray_step):
    info = probe_video(str(videos["a"]))
    assert (info.num_frames, info.width, info.height, info.codec) == (40, 64, 48, "h264")
    assert info.fps == pytest.approx(25.0)
    frames = read_frames(str(videos["m"]), [29, 3, 3])
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(ids_of(frames, gray_step), [29, 3, 3])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_unreadable_video_raises_decode_error_naming_file(tmp_path, videos, damage):
    data = videos["a"].read_bytes()
    bad = tmp_path / f"{damage}.mp4"
    bad.write_bytes(
        {"garbage": bytes(range(256)) * 40, "truncated": data[: len(data) // 2], "empty": b""}[
            damage
        ]
    )
    with pytest.raises(VideoDecodeError, match=f"{damage}.mp4"):
        with VideoReader(str(bad)) as reader:
            reader.read(range(reader.num_frames))


# -- transforms --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "height", "width", "short_side"),
    [
        ((256, 341), 240, 320, 256),  # mmcv rescale_size: 320 * 256 / 240 = 341.3 -> 341
        ((37, 49), 48, 64, 37),
        ((455, 256), 720, 405, 256),  # portrait: 720 * 256 / 405 = 455.1
        ((48, 64), 48, 64, 48),
    ],
)
def test_rescale_short_side(expected, height, width, short_side):
    assert rescale_short_side(height, width, short_side) == expected


def test_crop_offsets():
    assert center_crop_offsets(37, 49, 32) == (2, 8)
    seen = {random_crop_offsets(34, 35, 32, np.random.default_rng(s)) for s in range(300)}
    assert seen == set(itertools.product(range(3), range(4)))  # last offsets included
    with pytest.raises(ValueError, match="crop size"):
        center_crop_offsets(31, 40, 32)


def test_transform_frames_geometry_and_values():
    # Frames whose pixel (y, x) holds x (red), y (green) and the frame index (blue).
    t, h, w = 6, 40, 50
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    frames = np.stack([np.stack([xx, yy, np.full_like(xx, i)], axis=-1) for i in range(t)]).astype(
        np.uint8
    )
    common = dict(num_clips=2, short_side=40, crop_size=32, mean=(1.0, 2.0, 3.0), std=(2, 4, 8))
    out = transform_frames(frames, test_mode=True, flip=True, **common)
    assert out.shape == (2, 3, 3, 32, 32) and out.dtype == torch.float32
    # No resize (short side already 40); center crop at (4, 9).
    np.testing.assert_allclose(out[0, 0, 0, 0, :].numpy(), (np.arange(9, 41) - 1.0) / 2)
    np.testing.assert_allclose(out[0, 1, 0, :, 0].numpy(), (np.arange(4, 36) - 2.0) / 4)
    # Clip-major frames: clip 1 frame 2 is input frame 5.
    assert out[1, 2, 2].unique().tolist() == [(5 - 3.0) / 8]
    flips = set()
    for s in range(20):
        x = transform_frames(
            frames, test_mode=False, flip=True, rng=np.random.default_rng(s), **common
        )
        red = x[0, 0, 0, 0]
        flips.add(bool(red[0] > red[-1]))
    assert flips == {True, False}  # both orientations occur, decided per sample


@pytest.mark.parametrize(("height", "width"), [(32, 57), (45, 32), (32, 32), (32, 33)])
def test_three_crops_equal_mmaction2(mmaction_processing, height, width):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3)]
    theirs = mmaction_processing.ThreeCrop(32).transform(
        {"imgs": imgs, "img_shape": (height, width)}
    )["imgs"]
    ours = [
        img[top : top + 32, left : left + 32]
        for top, left in three_crop_offsets(height, width, 32)
        for img in imgs
    ]  # crop-major, as theirs
    assert len(ours) == len(theirs) == 9
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="three crops need a side equal to the crop size 32"):
        three_crop_offsets(40, 50, 32)


def test_transform_frames_three_crops():
    # Red holds x: the three crops of a 40x60 frame resized to 32x48 start at x 0, 16 and 8.
    t, h, w = 4, 40, 60
    xx = np.broadcast_to(np.arange(w) * 4, (h, w))
    frames = np.stack([np.stack([xx, xx * 0, np.full_like(xx, i)], -1) for i in range(t)]).astype(
        np.uint8
    )
    out = transform_frames(
        frames, num_clips=2, short_side=40, crop_size=32, test_mode=True, flip=False,
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), test_crop="three",
    )  # fmt: skip
    assert out.shape == (6, 3, 2, 32, 32)
    # Resized by 0.8 (bilinear), so x' holds about 4 * x' / 0.8 = 5 x' at the crop's columns.
    left_edges = [round(float(v[0, 0, :, 0].mean()) / 5) for v in out]
    assert left_edges == [0, 0, 16, 16, 8, 8]  # crop-major: left, right, middle; 2 clips each
    assert out[1, 2, 1].unique().tolist() == [3.0]  # clip 1, frame 1 is input frame 3
    center = transform_frames(
        frames, num_clips=2, short_side=40, crop_size=32, test_mode=True, flip=False,
        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
    )  # fmt: skip
    assert center.shape == (2, 3, 2, 32, 32)
    with pytest.raises(ValueError, match="test_crop must be one of 'center', 'three'"):
        transform_frames(
            frames, num_clips=2, short_side=40, crop_size=32, test_mode=True, flip=False,
            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), test_crop="ten",
        )  # fmt: skip


@pytest.mark.parametrize("test_mode", [True, False])
@pytest.mark.parametrize(("height", "width"), [(36, 48), (40, 50)])  # no resize / a resize
def test_transform_frames_equals_the_step_by_step_reference(test_mode, height, width):
    """The fused uint8 path gives bit-identical clips to float -> resize -> crop -> flip ->
    normalize -> to_clips, built from the public steps."""
    frames = np.random.default_rng(3).integers(0, 256, (6, height, width, 3), dtype=np.uint8)
    args = dict(num_clips=2, short_side=36, crop_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for seed in range(6):  # both flip outcomes
        got = transform_frames(
            frames, test_mode=test_mode, flip=True, rng=np.random.default_rng(seed), **args
        )
        rng = np.random.default_rng(seed)
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        h, w = rescale_short_side(height, width, 36)
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if test_mode:
            top, left = center_crop_offsets(h, w, 32)
        else:
            top, left = random_crop_offsets(h, w, 32, rng)
        x = x[..., top : top + 32, left : left + 32]
        if not test_mode and rng.random() < 0.5:
            x = hflip(x)
        want = to_clips(normalize(x, IMAGENET_MEAN, IMAGENET_STD), 2)
        assert torch.equal(got, want), seed


def test_small_transforms():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    assert hflip(x)[0, 0, 0].tolist() == [3.0, 2.0, 1.0, 0.0]
    y = normalize(torch.full((2, 3, 1, 1), 10.0), (1.0, 2.0, 4.0), (1.0, 2.0, 3.0))
    assert y[0, :, 0, 0].tolist() == [9.0, 4.0, 2.0]
    z = to_clips(torch.arange(6.0).view(6, 1, 1, 1).expand(6, 3, 1, 1), 2)
    assert z.shape == (2, 3, 3, 1, 1) and z[1, 0, :, 0, 0].tolist() == [3.0, 4.0, 5.0]


# -- datasets ----------------------------------------------------------------------------------


def test_video_list_dataset_items(tmp_path, videos, gray_step):
    lst = write_list(tmp_path / "train.txt", [f"{videos['a'].name} 1", f"{videos['m'].name} 0"])
    train = VideoListDataset(
        videos["a"].parent, lst, num_classes=2, pipeline=pipeline(test_mode=False)
    )
    val = VideoListDataset(
        videos["a"].parent, lst, num_classes=2, pipeline=pipeline(test_mode=True)
    )
    assert len(train) == 2 and train.labels == [1, 0]
    for dataset in (train, val):
        clip, label = dataset[0]
        assert clip.shape == (3, CLIP_LEN, 32, 32) and clip.dtype == torch.float32
        assert label == 1
    # Test mode: the centred clip of 40 frames, 4 x 2 -> offset (40 - 7) // 2 = 16.
    np.testing.assert_array_equal(clip_ids(val[0][0], gray_step), [16, 18, 20, 22])
    np.testing.assert_array_equal(clip_ids(val[1][0], gray_step), [11, 13, 15, 17])  # 30 frames
    # Normalisation: a gray g becomes (g - mean_c) / std_c per channel.
    g = 16 * gray_step
    expected = [(g - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    np.testing.assert_allclose(val[0][0][:, 0].mean(dim=(1, 2)).numpy(), expected, atol=3 / 58)
    # Training: random offsets inside [0, 40 - 8], consecutive frames 2 apart.
    starts = set()
    for seed in range(40):
        ids = clip_ids(train[(0, seed)][0], gray_step)
        np.testing.assert_array_equal(np.diff(ids), [2, 2, 2])
        assert 0 <= ids[0] <= 32
        starts.add(int(ids[0]))
    assert len(starts) > 10


def test_multi_clip_validation_and_short_video(tmp_path, videos, gray_step):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "long.mp4").symlink_to(videos["a"])
    (tmp_path / "clips" / "short.mp4").symlink_to(videos["short"])
    # root None: paths are relative to the list file's folder.
    lst = write_list(tmp_path / "val.txt", ["clips/long.mp4 0", "clips/short.mp4 1"])
    val = VideoListDataset(
        None, lst, num_classes=2, pipeline=pipeline(test_mode=True, num_clips=3)
    )
    clips, label = val[0]
    assert clips.shape == (3, 3, CLIP_LEN, 32, 32) and label == 0
    ids = np.stack([clip_ids(c, gray_step) for c in clips])
    np.testing.assert_array_equal(ids[:, 0], [0, 16, 33])  # spread over 0..40-7
    # 3 frames, 4 x 2: indices 0 2 4 6 loop to 0 2 1 0, as mmaction2's "loop".
    short = np.stack([clip_ids(c, gray_step) for c in val[1][0]])
    np.testing.assert_array_equal(short, [[0, 2, 1, 0]] * 3)


def test_sampling_options_reach_the_decoded_frames(tmp_path, videos, gray_step):
    """DataConfig's SampleFrames options and three crops, read back from decoded gray levels."""
    write_list(tmp_path / "l.txt", ["a.mp4 0"])  # 40 frames at 25 fps
    base = DataConfig(
        kind="video_list", root=str(videos["a"].parent), train_list=str(tmp_path / "l.txt"),
        val_list=str(tmp_path / "l.txt"), num_classes=2, clip_len=4, resolution=32,
    )  # fmt: skip

    def val_ids(cfg: DataConfig) -> np.ndarray:
        clips = build_datasets(cfg)[1][0][0]
        return np.stack([clip_ids(c, gray_step) for c in clips.reshape(-1, *clips.shape[-4:])])

    # target_fps 12.5 from 25 fps: a clip spans 8 source frames, floor(linspace(0, 7, 4)).
    np.testing.assert_array_equal(val_ids(base.replace(target_fps=12.5)), [[16, 18, 20, 23]])
    # twice_sample with 2 clips: offsets 0, 36, 72, 108 (mod 40 -> 0, 36, 32, 28).
    twice = val_ids(base.replace(num_clips=2, twice_sample=True))
    np.testing.assert_array_equal(twice[:, 0], [0, 36, 32, 28])
    # Three crops of 2 clips: 6 views, crop-major, the same frames in each crop.
    three = val_ids(base.replace(num_clips=2, test_crop="three"))
    np.testing.assert_array_equal(three[:, 0], [0, 36, 0, 36, 0, 36])
    # repeat_last on the 3-frame video: indices 0 1 2 3 -> 0 1 2 2.
    write_list(tmp_path / "s.txt", ["short.mp4 0"])
    short = base.replace(val_list=str(tmp_path / "s.txt"), out_of_bound="repeat_last")
    np.testing.assert_array_equal(val_ids(short), [[0, 1, 2, 2]])
    # temporal_jitter in training only: frames 2 apart move by 0 or 1 each; validation is fixed.
    jitter = base.replace(frame_interval=2, temporal_jitter=True)
    train, val = build_datasets(jitter)
    gaps = {tuple(np.diff(clip_ids(train[(0, s)][0], gray_step))) for s in range(30)}
    assert len(gaps) > 1 and all(set(g) <= {1, 2, 3} for g in gaps)
    np.testing.assert_array_equal(clip_ids(val[0][0], gray_step), [16, 18, 20, 22])


def test_dataset_items_are_seeded(tmp_path, videos):
    lst = write_list(tmp_path / "t.txt", [f"{videos['a'].name} 0"])
    data = VideoListDataset(
        videos["a"].parent, lst, num_classes=2, pipeline=pipeline(test_mode=False)
    )
    other = VideoListDataset(
        videos["a"].parent, lst, num_classes=2, pipeline=pipeline(test_mode=False), seed=1
    )
    assert torch.equal(data[(0, 5)][0], data[(0, 5)][0])
    assert torch.equal(data[0][0], data[0][0])
    distinct = {data[(0, s)][0].sum().item() for s in range(8)}
    assert len(distinct) > 1
    assert not all(torch.equal(data[(0, s)][0], other[(0, s)][0]) for s in range(4))


def test_class_folder_dataset(tmp_path, make_video, gray_step):
    for split, cls, name, n in [
        ("train", "jump", "j1.mp4", 20),
        ("train", "jump", "j2.avi", 18),
        ("train", "clap", "c1.mp4", 16),
        ("val", "jump", "j3.mp4", 12),
    ]:
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        codec = "mpeg4" if name.endswith(".avi") else "libx264"
        (tmp_path / split / cls / name).symlink_to(make_video(f"cf_{name}", n, codec=codec))
    (tmp_path / "train" / "jump" / "notes.txt").write_text("not a video")
    train = ClassFolderDataset(
        tmp_path / "train", num_classes=2, pipeline=pipeline(test_mode=False)
    )
    assert train.classes == ("clap", "jump")
    assert [(Path(p).name, y) for p, y in train.videos] == [
        ("c1.mp4", 0),
        ("j1.mp4", 1),
        ("j2.avi", 1),
    ]
    val = ClassFolderDataset(
        tmp_path / "val", classes=train.classes, pipeline=pipeline(test_mode=True)
    )
    clip, label = val[0]
    assert label == 1 and clip.shape == (3, CLIP_LEN, 32, 32)
    np.testing.assert_array_equal(clip_ids(clip, gray_step), [2, 4, 6, 8])  # (12 - 7) // 2 = 2
    with pytest.raises(ConfigError, match="num_classes is 3"):
        ClassFolderDataset(tmp_path / "train", num_classes=3, pipeline=pipeline(test_mode=False))


def test_class_folder_errors(tmp_path, videos):
    p = pipeline(test_mode=True)
    with pytest.raises(ConfigError, match="missing_root"):
        ClassFolderDataset(tmp_path / "missing_root", pipeline=p)
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(ConfigError, match="empty_root has no class subfolders"):
        ClassFolderDataset(tmp_path / "empty_root", pipeline=p)
    (tmp_path / "r" / "walk").mkdir(parents=True)
    with pytest.raises(ConfigError, match="walk has no video files"):
        ClassFolderDataset(tmp_path / "r", pipeline=p)
    (tmp_path / "r" / "walk" / "w.mp4").symlink_to(videos["a"])
    with pytest.raises(ConfigError, match="'walk'"):
        ClassFolderDataset(tmp_path / "r", classes=("run",), pipeline=p)


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (
            ["a.mp4 1", "nope.mp4 0", "gone.mp4 1"],
            r"line 2: video file .*nope.mp4 does not exist \(and 1 more",
        ),
        (["a.mp4 one"], r"line 1: label must be an integer .*got 'one'"),
        (["a.mp4 1", "a.mp4 3"], r"line 2: label must be in \[0, 3\) \(num_classes=3\); got 3"),
        (["a.mp4 -1"], r"line 1: label must be in \[0, 3\).*got -1"),
        (["a.mp4"], r"line 1: expected '<relative/path/video.mp4> <label>' \(2 fields\); got 1"),
        (["a.mp4 0 2"], r"line 1: .*got 3 fields"),
        (["", "   "], r"bad.txt has no entries"),
    ],
)
def test_list_errors_name_file_and_line(tmp_path, videos, lines, match):
    lst = write_list(tmp_path / "bad.txt", lines)
    with pytest.raises(ConfigError, match=match) as info:
        VideoListDataset(videos["a"].parent, lst, num_classes=3, pipeline=pipeline(test_mode=True))
    assert str(lst) in str(info.value) and "\n" not in str(info.value)


def test_missing_list_file_and_root(tmp_path, videos):
    with pytest.raises(ConfigError, match="list file .*missing.txt does not exist"):
        VideoListDataset(
            None, tmp_path / "missing.txt", num_classes=2, pipeline=pipeline(test_mode=True)
        )
    for name, make in (("latin1.txt", lambda f: f.write_bytes(b"caf\xe9.mp4 0\n")),
                       ("folder.txt", lambda f: f.mkdir())):  # fmt: skip
        make(tmp_path / name)
        with pytest.raises(ConfigError, match=f"cannot read list file .*{name}") as info:
            VideoListDataset(
                None, tmp_path / name, num_classes=2, pipeline=pipeline(test_mode=True)
            )
        assert "\n" not in str(info.value)
    lst = write_list(tmp_path / "ok.txt", ["a.mp4 0"])
    with pytest.raises(ConfigError, match="root .*nowhere is not a directory"):
        VideoListDataset(
            tmp_path / "nowhere", lst, num_classes=2, pipeline=pipeline(test_mode=True)
        )


def test_corrupt_video_is_skipped_counted_and_replaced(tmp_path, videos, gray_step):
    (tmp_path / "bad.mp4").write_bytes(videos["a"].read_bytes()[:300])
    (tmp_path / "good.mp4").symlink_to(videos["b"])
    lst = write_list(tmp_path / "l.txt", ["bad.mp4 1", "good.mp4 0"])
    data = VideoListDataset(None, lst, num_classes=2, pipeline=pipeline(test_mode=True))
    assert data.skipped == ()
    with pytest.warns(CorruptVideoWarning, match="bad.mp4"):
        clip, label = data[0]
    assert label == 0  # the next video stands in
    np.testing.assert_array_equal(clip_ids(clip, gray_step), [8, 10, 12, 14])  # (24 - 7) // 2
    assert data.skipped == (str(tmp_path / "bad.mp4"),) and data.num_skipped == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data[0][1] == 0  # known bad: no second decode attempt, no second warning


def test_skips_in_workers_are_counted_in_the_main_process(tmp_path, videos):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    (tmp_path / "good.mp4").symlink_to(videos["b"])
    lst = write_list(tmp_path / "l.txt", ["good.mp4 0", "bad.mp4 1", "good.mp4 0"])
    data = VideoListDataset(None, lst, num_classes=2, pipeline=pipeline(test_mode=True))
    loader = build_loader(data, batch_size=1, shuffle=False, num_workers=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptVideoWarning)
        labels = [int(y) for _, y in loader]
    assert labels == [0, 0, 0]
    assert data.skipped == (str(tmp_path / "bad.mp4"),)


def test_all_corrupt_raises(tmp_path):
    for name in ("x.mp4", "y.mp4"):
        (tmp_path / name).write_bytes(b"garbage")
    lst = write_list(tmp_path / "l.txt", ["x.mp4 0", "y.mp4 1"])
    data = VideoListDataset(None, lst, num_classes=2, pipeline=pipeline(test_mode=True))
    with pytest.warns(CorruptVideoWarning), pytest.raises(VideoDecodeError, match="x.mp4"):
        data[0]
    assert data.num_skipped == 2


# -- loaders -----------------------------------------------------------------------------------


def test_loader_is_reproducible_across_worker_counts(tmp_path, videos):
    names = [videos[k].name for k in ("a", "b", "m", "a", "b")]
    lst = write_list(tmp_path / "l.txt", [f"{n} {i % 2}" for i, n in enumerate(names)])
    data = VideoListDataset(
        videos["a"].parent, lst, num_classes=2, pipeline=pipeline(test_mode=False)
    )

    def epochs(num_workers: int, seed: int, persistent: bool = False) -> list[list]:
        loader = build_loader(
            data,
            batch_size=2,
            shuffle=True,
            num_workers=num_workers,
            seed=seed,
            persistent_workers=persistent,
        )
        return [list(loader) for _ in range(2)]

    serial, parallel, other = epochs(0, 3), epochs(2, 3), epochs(0, 4)
    persistent = epochs(2, 3, persistent=True)
    for a, b in [*zip(serial, parallel, strict=True), *zip(serial, persistent, strict=True)]:
        assert [x.shape for x, _ in a] == [(2, 3, CLIP_LEN, 32, 32)] * 2 + [
            (1, 3, CLIP_LEN, 32, 32)
        ]
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(serial[0][0][0], serial[1][0][0])  # a new epoch, new draws
    assert not torch.equal(serial[0][0][0], other[0][0][0])  # another seed


# -- DataConfig and build_datasets --------------------------------------------------------------


def test_config_defaults_and_round_trip():
    cfg = DataConfig()
    assert cfg.kind == "motion" and cfg.mean == IMAGENET_MEAN and cfg.std == IMAGENET_STD
    assert (
        DataConfig(
            kind="video_list", train_list="t", val_list="v", resolution=224
        ).effective_short_side
        == 256
    )
    cfg = DataConfig(kind="video_list", root="/r", train_list="t", val_list="v", num_clips=3)
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig.from_dict({"kind": "motion", "mean": [1, 2, 3]}).mean == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("kind", {"kind": "folders"}),
        ("num_classes", {"num_classes": 1}),
        ("clip_len", {"clip_len": 0}),
        ("frame_interval", {"frame_interval": 1.5}),
        ("resolution", {"resolution": True}),
        (
            "short_side",
            {"kind": "class_folders", "root": "/r", "resolution": 64, "short_side": 60},
        ),
        ("num_workers", {"num_workers": -1}),
        ("mean", {"mean": (1.0, 2.0)}),
        ("std", {"std": (1.0, 0.0, 1.0)}),
        ("flip", {"flip": "yes"}),
        ("num_train_clips", {"num_train_clips": 0}),
        ("noise", {"noise": float("nan")}),
        ("seed", {"seed": -1}),
        ("root", {"root": ""}),
        ("train_list", {"kind": "video_list", "val_list": "v"}),
        ("val_list", {"kind": "video_list", "train_list": "t"}),
        ("train_list", {"kind": "class_folders", "root": "/r", "train_list": "t"}),
        ("root", {"kind": "class_folders"}),
        ("root", {"root": "/r"}),  # motion has no files
        ("num_clips", {"num_clips": 2}),  # motion has no multi-view test
        ("frame_interval", {"frame_interval": 2}),
        ("test_crop", {"test_crop": "three"}),  # motion clips are already the network's size
        ("test_crop", {"kind": "class_folders", "root": "/r", "test_crop": "ten"}),
        ("out_of_bound", {"kind": "class_folders", "root": "/r", "out_of_bound": "clamp"}),
        ("target_fps", {"kind": "class_folders", "root": "/r", "target_fps": 0}),
        ("temporal_jitter", {"kind": "class_folders", "root": "/r", "temporal_jitter": 1}),
        (
            "temporal_jitter",
            {"kind": "class_folders", "root": "/r", "temporal_jitter": True, "target_fps": 10},
        ),
        ("twice_sample", {"kind": "class_folders", "root": "/r", "twice_sample": True}),
    ],
)
def test_config_rejects_bad_values(field, changes):
    with pytest.raises(ConfigError, match=field) as info:
        DataConfig(**changes)
    assert "\n" not in str(info.value)


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="'batch'.*allowed: kind"):
        DataConfig.from_dict({"kind": "motion", "batch": 3})


def test_build_datasets_video_list(tmp_path, videos):
    root = videos["a"].parent
    cfg = video_list_data(root, tmp_path, train=["a.mp4 0", "b.mp4 1"], val=["m.avi 1"])
    train, val = build_datasets(cfg)
    assert len(train) == 2 and len(val) == 1
    assert train[0][0].shape == (3, 4, 32, 32)
    assert val[0][0].shape == (2, 3, 4, 32, 32) and val[0][1] == 1
    with pytest.raises(ConfigError, match="val_list: list file .*nope.txt does not exist"):
        build_datasets(cfg.replace(val_list=str(tmp_path / "nope.txt")))


def test_build_datasets_class_folders(tmp_path, videos):
    for split in ("train", "val"):
        for cls, key in (("a", "a"), ("b", "b")):
            (tmp_path / split / cls).mkdir(parents=True)
            (tmp_path / split / cls / "v.mp4").symlink_to(videos[key])
    cfg = DataConfig(
        kind="class_folders", root=str(tmp_path), num_classes=2, clip_len=4, resolution=32
    )
    train, val = build_datasets(cfg)
    assert train.classes == val.classes == ("a", "b")
    assert [val[i][1] for i in range(2)] == [0, 1]
    with pytest.raises(ConfigError, match="root: .*train/train is not a directory"):
        build_datasets(cfg.replace(root=str(tmp_path / "train")))


def test_build_datasets_motion():
    pytest.importorskip("runners.data.motion")
    train, val = build_datasets(
        DataConfig(num_train_clips=6, num_val_clips=4, clip_len=4, resolution=16)
    )
    assert len(train) == 6 and len(val) == 4
    clip, label = train[0]
    assert clip.shape == (3, 4, 16, 16) and 0 <= int(label) < 4
