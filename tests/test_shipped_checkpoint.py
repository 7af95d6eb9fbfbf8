"""The shipped checkpoint does what it ships for: better wrinkle normals on skin no training saw, and relief where
a real photo has wrinkles."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize
from hydra.core.hydra_config import HydraConfig
from PIL import Image

from fds.detail import DetailPredictor
from fds.evaluation import checkpoint_units, held_out_samples, network_map_predictor, score_maps
from fds.facemodel import region_masks
from fds.resources import shipped_checkpoint

FACE_REGIONS = ("forehead", "eyes", "cheeks", "mouth")
SKIN_REGIONS = ("eyes", "cheeks", "mouth")  # bare skin in both photos
# the UV-trained checkpoint (the default until the photo-level fine-tune) and the weights it was fine-tuned from
UV_CHECKPOINT = shipped_checkpoint("dfdn_lite_uv.safetensors")
# the V-input round 8 the default was widened from (the default until 2026-12-06)
V_CHECKPOINT = shipped_checkpoint("dfdn_lite_v.safetensors")
START_WEIGHTS = shipped_checkpoint("dfdn_lite_geo.safetensors")
# where the default's photo-level lineage starts (experiment=dfdn_photo, then dfdn_photo_cue and dfdn_photo_cue_scale)
PHOTO_START_WEIGHTS = UV_CHECKPOINT


@pytest.fixture(scope="module")
def wrinkle_errors(tmp_path_factory, shared_data) -> dict[str, float]:
    """Normal-angle error (°) on the wrinkle texels of two held-out procedural scans (eval/run.py's first two
    seeds, which no training set uses), scored by the evaluation's own code, for the UV-trained checkpoint, the
    start weights it was fine-tuned from, the same networks untrained, and no detail at all."""
    tmp = tmp_path_factory.mktemp("heldout")
    shipped = DetailPredictor.from_checkpoint(UV_CHECKPOINT)
    with initialize(version_base="1.3", config_path="../configs"):
        cfg = compose(config_name="eval", return_hydra_config=True, overrides=[
            f"paths.data_dir={tmp}", f"paths.output_dir={tmp / 'run'}", "data.scans.num_generate=2"])
    HydraConfig.instance().set_config(cfg)
    checkpoint_units(cfg, shipped.meta)
    samples = held_out_samples(cfg)
    start = DetailPredictor.from_checkpoint(START_WEIGHTS, shipped.face_model)
    methods = {"shipped": network_map_predictor(shipped), "start": network_map_predictor(start),
               "untrained": network_map_predictor(shipped.untrained(seed=0)),
               "zero": lambda texture, fit: np.zeros(texture.shape[:2], np.float32)}
    return {name: score_maps(fn, samples, shipped.face_model).metrics["wrinkles"]["normal_deg"]
            for name, fn in methods.items()}


def beats_what_it_replaces(errors: dict[str, float], candidate: str) -> bool:
    """The property the checkpoint ships for: on wrinkle texels it errs less than no detail and less than the
    geometry-only weights it was fine-tuned from. Every method is scored on the same texels of the same scans by
    the same deterministic code, so the comparison is paired and noise-free: any strictly positive gain is a real
    gain on these scans, and no margin beyond it is asked (one would only restate a measurement)."""
    return errors[candidate] < errors["zero"] and errors[candidate] < errors["start"]


@pytest.mark.slow
def test_uv_checkpoint_improves_wrinkle_normals_on_unseen_procedural_skin(wrinkle_errors):
    assert beats_what_it_replaces(wrinkle_errors, "shipped"), wrinkle_errors
    # negative controls: the same check refuses the start weights (they are the reference) and an untrained
    # network (its near-zero output errs like no detail, worse than the geometry pre-training)
    assert not beats_what_it_replaces(wrinkle_errors, "start"), wrinkle_errors
    assert not beats_what_it_replaces(wrinkle_errors, "untrained"), wrinkle_errors


@pytest.fixture(scope="module")
def relief(tmp_path_factory, grace_hopper_path, astronaut):
    """RMS displacement (mm) per face region of the shipped network's map for an 85-year-old with deep
    forehead and cheek lines (grace_hopper) and a young face smiling broadly (astronaut: smooth skin, freckles,
    creases at the mouth corners), of the same network untrained on both (``untrained``,
    ``untrained_astronaut``), and of an untrained V-input network on grace_hopper (``untrained_v``)."""
    from fds.proxy import ProxyStage

    tmp = tmp_path_factory.mktemp("relief")
    Image.fromarray(astronaut).save(tmp / "astronaut.png")
    stage = ProxyStage(cache_dir=tmp / "cache")
    predictor = DetailPredictor.from_checkpoint(shipped_checkpoint(), stage.face_model)
    masks = region_masks(stage.face_model, predictor.resolution)
    out = {}
    untrained = predictor.untrained(seed=0)
    untrained_v = DetailPredictor.from_checkpoint(V_CHECKPOINT, stage.face_model).untrained(seed=0)
    for name, path, net in (("grace_hopper", grace_hopper_path, predictor),
                            ("astronaut", tmp / "astronaut.png", predictor),
                            ("untrained", grace_hopper_path, untrained),
                            ("untrained_astronaut", tmp / "astronaut.png", untrained),
                            ("untrained_v", grace_hopper_path, untrained_v)):
        detail = net(stage(path)[0])
        disp, coverage = detail.displacement_mm, detail.coverage
        out[name] = {r: float(np.sqrt((disp[masks[r] & coverage] ** 2).mean())) for r in FACE_REGIONS}
        seen = np.concatenate([disp[masks[r] & coverage] for r in FACE_REGIONS])
        out[name]["face"] = float(np.sqrt((seen**2).mean()))
    return out


@pytest.mark.slow
def test_relief_follows_the_wrinkles_of_the_photo(relief):
    old, young, untrained = relief["grace_hopper"], relief["astronaut"], relief["untrained"]
    # in every region where both photos show skin the wrinkled face gets more relief; the forehead is not
    # compared: it lies under Grace Hopper's cap and the astronaut's fringe (hair strands read as grooves there)
    for region in SKIN_REGIONS:
        assert old[region] > young[region], (region, relief)
    assert young["face"] < 0.05  # mm: no invented deep furrows on smooth skin
    # negative control, which the two checks above do not give (an untrained network follows the photos'
    # contrast and passes them): an untrained V-input network's amplitude ratio on the photo-level benchmark is
    # 0.005, the issue asks for 0.5 on real photos; a network at a tenth of that still makes 10x its relief.
    # The reference is the V-input network: an untrained network that also reads the shading cue and the photo
    # scale responds to those maps as well as to the photo (on grace_hopper ~5x the V network's relief), so its
    # relief is no estimate of "no training". It must fail the check too.
    assert old["face"] > 10 * relief["untrained_v"]["face"], relief
    assert not untrained["face"] > 10 * relief["untrained_v"]["face"], relief


@pytest.mark.slow
def test_the_wrinkled_face_gets_far_more_relief_than_the_smooth_one(relief):
    def ratio(old: str, young: str) -> float:
        return relief[old]["face"] / relief[young]["face"]

    # "far more": at least 1.5x, and more than the ratio an untrained network gets on the same two photos by
    # following image contrast alone (about 1.5x too), so the ratio measures training, not contrast. Rounds 2-4 of
    # the photo-level fine-tune did not pass (1.40x, 1.39x, 1.32x: relief on the astronaut's smile creases);
    # rounds 5-8 do (1.89x, 2.07x, 1.96x, 1.76x), the cue + scale ninth round 1.73x, and the luma default 3.46x:
    # it draws the astronaut's smile creases fainter (issue 15, checkpoints/MODEL_CARD.md).
    trained = ratio("grace_hopper", "astronaut")
    assert trained > 1.5 and trained > ratio("untrained", "untrained_astronaut"), relief


@pytest.fixture(scope="module")
def photo_agreement(tmp_path_factory, sfm) -> dict[str, dict[str, float]]:
    """Validation's measure of detail on held-out *photo-level* heads (fds.data.photo_scans: a head rendered as a
    photo, run through the real proxy stage, GT ray-cast into the fitted UV; seeds no training set uses): the
    Pearson r and RMS amplitude ratio of the band-passed detail normals of each method's full map against the GT,
    pooled over the texels the photo shows."""
    import torch

    from fds.data.photo_scans import PhotoScanGenerator
    from fds.data.sample_io import read_sample
    from fds.data.scans import ScanFolder, sample_texel_mm
    from fds.evaluation_photo_level import LIGHTINGS, write_held_out_photos
    from fds.metrics import UV_DETAIL_BAND_TEXELS, DetailAgreement, detail_band, detail_normals_xy

    tmp = tmp_path_factory.mktemp("photo_heads")
    gen = PhotoScanGenerator("sfm", 1024, 1024, cache_dir=tmp / "cache")
    folders: list = []
    for seed in range(960000, 960010):  # two heads that get a proxy, soft frontal light
        found, _ = write_held_out_photos(tmp / "photos", gen, [seed], {"soft_front": LIGHTINGS["soft_front"]})
        folders += found
        if len(folders) == 2:
            break
    assert len(folders) == 2, "fewer than 2 of 10 held-out photos got a proxy"
    shipped = DetailPredictor.from_checkpoint(shipped_checkpoint(), sfm)
    methods = {"shipped": network_map_predictor(shipped),
               "start": network_map_predictor(DetailPredictor.from_checkpoint(PHOTO_START_WEIGHTS, sfm)),
               "untrained": network_map_predictor(shipped.untrained(seed=0))}
    acc = {name: DetailAgreement() for name in methods}
    low, high = UV_DETAIL_BAND_TEXELS
    source = ScanFolder(folders=folders)  # with each photo's fitted proxy: the default reads the fit
    for i, folder in enumerate(source.folders):
        s = read_sample(folder)
        fit = source.fit(i)
        valid = torch.from_numpy(s.mask & (s.visibility > 0.5))[None, None].float()
        texel = torch.tensor([sample_texel_mm(s)], dtype=torch.float32)
        gt = detail_band(detail_normals_xy(torch.from_numpy(s.displacement_mm)[None, None], texel), high, low, valid)
        for name, fn in methods.items():
            pred = torch.from_numpy(fn(s.texture, fit))[None, None]
            acc[name].update(detail_band(detail_normals_xy(pred, texel), high, low, valid), gt, valid)
    return {name: a.compute() for name, a in acc.items()}


def reads_photos_better(scores: dict[str, dict[str, float]], candidate: str) -> bool:
    """What the photo-level fine-tune ships for: its detail follows a photo's true detail more closely than the
    weights it was fine-tuned from, on the same texels of the same held-out heads (paired, deterministic: any gain
    is a real one on these heads) and with more of the true amplitude (less shrinkage towards zero)."""
    return (scores[candidate]["detail_r"] > scores["start"]["detail_r"]
            and scores[candidate]["amplitude_ratio"] > scores["start"]["amplitude_ratio"])


@pytest.mark.slow  # renders and fits two photos, three networks over 1024² maps: ~3 min on 2 cores
def test_shipped_checkpoint_reads_photo_level_detail(photo_agreement):
    assert reads_photos_better(photo_agreement, "shipped"), photo_agreement
    # negative controls: the start weights are the reference; an untrained network's output follows the photo's
    # edges, not the relief
    assert not reads_photos_better(photo_agreement, "start"), photo_agreement
    assert not reads_photos_better(photo_agreement, "untrained"), photo_agreement
