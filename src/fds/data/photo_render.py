"""Render a detailed head (``ProceduralScanGenerator.head``) as a photo: camera, lights, shadows, skin, lens, sensor.

One call of :func:`render_photo` draws, from one random stream:

1. **pose and camera**: yaw ±45°, pitch ±20°, roll ±10° about the face's centre; a pinhole camera (horizontal
   field of view 18–65°) at the distance that makes the face (the face model's full width, ear to ear) 150–1000 px
   wide, log-uniformly; photo 1.5–2.6 face widths wide, landscape, square or portrait; the face anywhere inside;
2. **geometry**: the GT displacement baked into the face mesh (``fds.mesh.bake``), pre-filtered by a Gaussian of
   half the final edge length so the vertices do not alias it; the subdivision level makes edges ≈ 2 px in
   this photo (at most ``max_levels``). Detail finer than the mesh reaches the image through *normal mapping*:
   shading uses the GT detailed normal map (the displacement's metric slope in the proxy's tangent frame, full
   UV resolution) at each pixel's GT UV, so fine grooves shade correctly even where the mesh cannot carry them;
3. **light** (linear RGB, camera frame): an order-2 SH environment (``fds.data.lighting``) times the cavity
   occlusion of the displacement (``fds.data.occlusion``), plus 1–2 distant lights (angular radius 0–12°: hard
   to soft) with **cast shadows** (``fds.render.shadows``: shadow maps of the face mesh, area lights sampled in
   their cone), a GGX specular lobe (roughness 0.3–0.6, skin's f0 = 0.028) and a little SH reflection; the
   diffuse irradiance is blurred per channel (σ ≈ 1.0 / 0.45 / 0.25 mm for R/G/B) inside the face for skin's
   subsurface scattering, then multiplied by the albedo;
4. **compositing** over a face-free crop of a real photo (``fds.data.backgrounds``) with a soft silhouette;
5. **camera**: optical blur, exposure (auto-exposed face, then ±0.7 stops), white-balance error, Poisson-Gaussian
   sensor noise, sRGB encoding, resolution loss and JPEG (quality 45–95).

Besides the photo it returns, per pixel, what the photo shows: the GT UV of the surface, the GT detailed and
smooth normals (camera frame), a region label (:data:`PHOTO_REGIONS`), and the exact surface under any sub-pixel
position (:meth:`RenderedPhoto.surface_at`), which the GT construction of ``fds.data.raycast_gt`` uses.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from fds.data.degrade import gaussian_blur
from fds.data.lighting import random_sh
from fds.data.occlusion import cavity_occlusion
from fds.data.surface_hits import SurfaceHits, camera_ray_hits
from fds.facemodel import FaceModel
from fds.mesh.bake import BakedMesh, bake_displacement
from fds.mesh.meshdata import MeshData
from fds.render import PinholeCamera, ggx_specular, interpolate, rasterize, sh_irradiance, texture, uv_derivatives

#: Region labels of the photo's pixels (0 = not the face).
PHOTO_REGIONS = ("forehead", "brows", "eyes", "nose", "cheeks", "nasolabial", "mouth", "chin")


#: A cast-shadow edge is where the strongest light's visibility changes by more than this per pixel (a hard
#: shadow drops from 1 to 0 within 2 px; soft penumbras stay under it).
SHADOW_EDGE_PER_PX = 0.25


def cast_shadow_edges(shadow: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: edges of the cast shadows in a photo's ``shadow`` map (visibility of the strongest light,
    ``[H, W]`` in [0, 1]): pixels where it changes by more than :data:`SHADOW_EDGE_PER_PX` per pixel. The GT
    relief is flat there: the dark line is light, not a groove."""
    import kornia

    vis = torch.from_numpy(np.asarray(shadow, np.float32))[None, None]
    vis = kornia.filters.gaussian_blur2d(vis, (5, 5), (0.5, 0.5), border_type="reflect")  # σ = 0.5 px, ±3σ
    grad = kornia.filters.spatial_gradient(vis, normalized=True)[0, 0]  # [2, H, W] per px
    return (grad.norm(dim=0) > SHADOW_EDGE_PER_PX).numpy()


@dataclass(frozen=True)
class PhotoConfig:
    """Ranges of the random photo (see module doc)."""

    face_width_px: tuple[float, float] = (150.0, 1000.0)
    image_over_face: tuple[float, float] = (1.5, 2.6)
    yaw_deg: float = 45.0
    pitch_deg: float = 20.0
    roll_deg: float = 10.0
    fov_deg: tuple[float, float] = (18.0, 65.0)
    max_levels: int = 3
    shadow_resolution: int = 512
    occlusion_radius_mm: float = 1.5
    jpeg_quality: tuple[int, int] = (45, 95)
    # "mipmap": each pixel averages the UV maps' texels it covers (normals, albedo, occlusion), as a camera pixel
    # integrates; "point": one bilinear sample per pixel centre (renders before 2026-12-06: under a small face the
    # pores and thin grooves alias into pixel noise in the shading and the GT normals)
    texture_filter: str = "mipmap"
    # False: the camera's blur, white balance, sensor noise, resolution loss and JPEG are drawn (so every other draw
    # stays as with them) but not applied: the same photo as a perfect camera would take it (a diagnostic; the
    # exposure is the scene's and stays)
    camera_effects: bool = True
    # share of photos kept without JPEG (as a PNG straight from the sensor); every other effect stays. Drawn after
    # every other draw and only when above 0, so the photos of a config without it are unchanged (the network of
    # 2026-12-06 read some forehead furrows only from JPEG pixels: docs/bench_photo_level.md)
    lossless_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.texture_filter not in ("mipmap", "point"):
            raise ValueError(f"photo texture_filter must be 'mipmap' or 'point', got {self.texture_filter!r}")
        if not 0.0 <= self.lossless_fraction <= 1.0:
            raise ValueError(f"photo lossless_fraction must lie in [0, 1], got {self.lossless_fraction!r}")


@dataclass
class RenderedPhoto:
    """A rendered photo and what each pixel shows. Pixels: 0-based, x = column, y = row down."""

    image: np.ndarray  # uint8 [H, W, 3] sRGB
    camera: PinholeCamera
    face_mask: np.ndarray  # bool [H, W] the GT face covers the pixel centre
    gt_uv: np.ndarray  # float32 [H, W, 2] GT UV (image convention) of the surface seen; NaN off the face
    normal_detail: np.ndarray  # float32 [H, W, 3] GT detailed normal, camera frame (0 off the face)
    normal_smooth: np.ndarray  # float32 [H, W, 3] GT smooth (proxy) normal at the same surface point
    region: np.ndarray  # uint8 [H, W] 0 = background, 1 + index into PHOTO_REGIONS
    landmarks_px: np.ndarray  # float32 [68, 2] true iBUG points (NaN where the model maps none)
    baked: BakedMesh  # the rendered detailed mesh (model frame, mm)
    tri_id: np.ndarray  # int32 [H, W] baked triangle seen at the pixel centre, −1 = none
    params: dict = field(default_factory=dict)  # pose, lights, SH, camera effects, background, levels
    shadow: np.ndarray | None = None  # float32 [H, W] visibility of the strongest light: 0 = cast shadow (1 off face)
    marks: np.ndarray | None = None  # float32 [H, W] colour-only marks' albedo change seen at the pixel (0 = none)

    def surface_at(self, pixels: np.ndarray) -> SurfaceHits:
        """The rendered surface under sub-pixel positions ``pixels [N, 2]``: exact camera-ray / triangle
        intersections with the triangles seen at the 3×3 nearest pixel centres (the nearest hit wins)."""
        return camera_ray_hits(self.camera, self.baked, self.tri_id, pixels)


def photo_region_labels(fm: FaceModel, resolution: int) -> np.ndarray:
    """``uint8 [R, R]`` UV labels (0 outside the chart, else 1 + index into :data:`PHOTO_REGIONS`): the face
    model's regions with a **nasolabial** band (± 0.1 eye distances ≈ 6 mm around the line from the nose wing to
    beside the mouth corner, where ``fds.data.wrinkles`` puts the fold) carved out of the cheeks."""
    from fds.facemodel.regions import REGIONS, region_labels
    from fds.facemodel.uvchart import uv_chart

    base = region_labels(fm, resolution)
    chart = uv_chart(fm, resolution)
    pts = chart.landmarks_frame
    out = np.zeros_like(base, np.uint8)
    for i, name in enumerate(REGIONS):
        out[base == i + 1] = PHOTO_REGIONS.index(name) + 1
    xy = chart.frame_xy
    band = np.zeros(base.shape, bool)
    for wing_id, corner_id, side in ((32, 49, -1), (36, 55, 1)):
        wing = np.asarray(pts.get(wing_id, (side * 0.19, -0.74))) + [side * 0.07, 0.06]
        corner = np.asarray(pts.get(corner_id, (side * 0.37, -1.08))) + [side * 0.09, -0.12]
        seg = corner - wing
        t = np.clip(((xy[..., 0] - wing[0]) * seg[0] + (xy[..., 1] - wing[1]) * seg[1]) / (seg @ seg), 0, 1)
        dist = np.hypot(xy[..., 0] - wing[0] - t * seg[0], xy[..., 1] - wing[1] - t * seg[1])
        band |= np.nan_to_num(dist, nan=9.0) < 0.1
    cheeks = base == REGIONS.index("cheeks") + 1
    out[band & cheeks] = PHOTO_REGIONS.index("nasolabial") + 1
    return out


def rotation_ypr(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Head rotation ``[3, 3]`` = Rz(roll) · Rx(pitch) · Ry(yaw) in the model frame (y up, z to the viewer):
    positive yaw turns the face toward the image's right, positive pitch lifts the chin."""
    y, p, r = np.deg2rad([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def srgb_to_linear(x: np.ndarray | torch.Tensor):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4) if isinstance(x, np.ndarray) else \
        torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def sensor_noise(rng: np.random.Generator, linear: np.ndarray, shot: float, read: float) -> np.ndarray:
    """The camera's sensor noise for a linear-light image ``[H, W, 3]`` in [0, 1]: Gaussian with variance
    ``shot · x + read`` per pixel and channel (float32, the same shape; add it to the image)."""
    return rng.standard_normal(linear.shape).astype(np.float32) * np.sqrt(shot * np.clip(linear, 0, 1) + read)


def jpeg_roundtrip(image: np.ndarray, quality: int, subsampling: int = -1) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB encoded as JPEG at ``quality`` and decoded again, as the generator's camera does
    (``subsampling``: Pillow's chroma subsampling, -1 its default 4:2:0, 0 none)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _fill_outside(maps: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Extend ``maps [R, R, C]`` past the chart edge with the nearest covered texel (bilinear lookups at the
    edge then never blend with the empty outside)."""
    _, (ri, ci) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return maps[ri, ci]


def _random_lights(rng: np.random.Generator) -> list[dict]:
    """1–2 distant lights in the camera frame: a key light anywhere in front (up to 95° off the view axis,
    mostly from above: hard side light included) and sometimes a weaker fill or rim light."""
    lights = []
    for i in range(1 + int(rng.random() < 0.5)):
        off = rng.uniform(10, 95) if i == 0 else rng.uniform(20, 110)
        az = rng.uniform(0, 2 * np.pi)
        theta = np.deg2rad(off)
        st = np.sin(theta)
        d = np.array([st * np.cos(az), st * np.sin(az) * 0.7 + 0.3 * st, np.cos(theta)])
        d /= np.linalg.norm(d)
        power = rng.uniform(0.8, 2.8) * (1.0 if i == 0 else rng.uniform(0.15, 0.5))
        tint = np.exp(rng.normal(0, 0.06, 3))
        lights.append({"direction": d.tolist(), "rgb": (power * tint / tint[1]).tolist(),
                       "radius_deg": float(rng.choice([0.0, rng.uniform(2, 12)]))})
    return lights


def render_photo(rng: np.random.Generator, surface: MeshData, head: dict, region_map: np.ndarray,
                 backgrounds, config: PhotoConfig = PhotoConfig(), backend: str = "auto",
                 landmark_vertices: np.ndarray | None = None, lights: list[dict] | None = None) -> RenderedPhoto:
    """Render ``head`` (from :meth:`ProceduralScanGenerator.head`, with ``albedo``) as a photo (module doc).

    ``surface``: the smooth head mesh (mm, model frame: y up, the face looking along +z) with the UVs of the
    head's maps; ``landmark_vertices [68]`` its iBUG vertices (−1 = none; None: unknown, e.g. a scan);
    ``region_map`` = :func:`photo_region_labels` at the head's UV resolution; ``backgrounds`` a
    :class:`fds.data.backgrounds.BackgroundBank` (or anything with ``sample(rng, h, w)``). ``lights`` replaces
    the random distant lights (dicts ``direction`` camera frame, ``rgb``, ``radius_deg``); everything else is drawn
    as without it, so one seed renders the same photo under several given lightings.
    """
    cfg = config
    verts = np.asarray(surface.vertices, np.float64)
    disp = np.asarray(head["displacement_mm"], np.float32)
    covered = np.asarray(head["covered"], bool)
    du, dv = head["texel_mm"]

    # --- pose and camera ---------------------------------------------------------------------------------
    yaw, pitch, roll = (float(rng.uniform(-a, a)) for a in (cfg.yaw_deg, cfg.pitch_deg, cfg.roll_deg))
    rot = rotation_ypr(yaw, pitch, roll)
    lm_ids = np.full(68, -1) if landmark_vertices is None else np.asarray(landmark_vertices)
    centre = verts[lm_ids[lm_ids >= 0]].mean(0) if (lm_ids >= 0).any() else (verts.min(0) + verts.max(0)) / 2
    face_px = float(np.exp(rng.uniform(*np.log(cfg.face_width_px))))
    width = int(round(face_px * rng.uniform(*cfg.image_over_face)))
    aspect = float(rng.choice([0.75, 1.0, 4 / 3]))
    height = int(round(width / aspect))
    fov = np.deg2rad(rng.uniform(*cfg.fov_deg))
    f_px = width / (2 * np.tan(fov / 2))
    posed = (verts - centre) @ rot.T
    face_mm = float(np.ptp(posed[:, 0]))
    dist = f_px * face_mm / face_px + float(posed[:, 2].max())
    free_x, free_y = max(width - 1.15 * face_px, 0) / 2, max(height - 1.3 * face_px, 0) / 2
    px_c = width / 2 + rng.uniform(-free_x, free_x)
    py_c = height / 2 + rng.uniform(-free_y, free_y)
    t = np.array([(px_c - width / 2) * dist / f_px, -(py_c - height / 2) * dist / f_px, -dist])
    camera = PinholeCamera(float(f_px), float(f_px), width / 2 - 0.5, height / 2 - 0.5, width, height, rot,
                           t - rot @ centre)
    px_per_mm = f_px / dist

    # --- geometry: bake the (pre-filtered) displacement at ≈ 2 px edges -------------------------------------
    tri = np.asarray(surface.triangles, np.int64)
    edge_mm = float(np.linalg.norm(verts[tri] - np.roll(verts[tri], 1, axis=1), axis=-1).mean())
    levels = int(np.clip(np.ceil(np.log2(max(edge_mm * px_per_mm / 2.0, 1.0))), 0, cfg.max_levels))
    sigma_mm = edge_mm / 2 ** levels / 2
    disp_low = ndimage.gaussian_filter(disp, (sigma_mm / dv, sigma_mm / du)) if levels < 8 else disp
    proxy = MeshData(verts.astype(np.float32), surface.triangles, surface.uv, surface.uv_triangles)
    baked = bake_displacement(proxy, np.where(covered, disp_low, 0), levels=levels)
    caster = bake_displacement(proxy, np.where(covered, disp_low, 0), levels=0)  # casts the face's own shadows
    v_cam = torch.from_numpy(camera.to_camera(baked.mesh.vertices)).float()
    proj = camera.project(v_cam.numpy())
    x0, y0 = np.floor(proj.min(0)).astype(int) - 2
    x1, y1 = np.ceil(proj.max(0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    win = (int(x0), int(y0), int(x1), int(y1))
    hh, ww = win[3] - win[1], win[2] - win[0]
    tri_t = torch.from_numpy(baked.mesh.triangles.astype(np.int64))
    assert baked.mesh.uv_triangles is not None, "the baked head has UVs"
    uvtri_t = torch.from_numpy(baked.mesh.uv_triangles.astype(np.int64))
    with torch.no_grad():
        rast = rasterize(camera.clip(v_cam.double(), win).float(), tri_t, (hh, ww), backend=backend)
        inside = rast[0, ..., 3] > 0  # [h, w]
        uv_px = interpolate(torch.from_numpy(baked.mesh.uv).float(), rast, uvtri_t, backend=backend)  # [1,h,w,2]
        pos = interpolate(v_cam, rast, tri_t, backend=backend)[0]  # [h, w, 3] camera frame
        n_s = F.normalize(interpolate(torch.from_numpy(baked.normals @ rot.T.astype(np.float32)), rast, tri_t,
                                      backend=backend)[0], dim=-1)

        # each pixel averages the texels it covers (mip-mapped), as a camera pixel integrates what it sees: point
        # samples of a 1024² map under a small face alias pores and thin grooves into pixel noise, in the photo's
        # shading and in the GT normals alike
        uv_da = uv_derivatives(uv_px, inside[None]) if cfg.texture_filter == "mipmap" else None

        def lookup(m: np.ndarray, mode: str = "filtered") -> torch.Tensor:  # [R,R,C] → [h,w,C]
            tex = torch.from_numpy(np.ascontiguousarray(m, np.float32))[None]
            if mode == "nearest":
                grid = (uv_px * 2 - 1).to(tex.dtype)
                return F.grid_sample(tex.permute(0, 3, 1, 2), grid, mode="nearest", padding_mode="border",
                                     align_corners=False)[0].permute(1, 2, 0)
            return texture(tex, uv_px, uv_da)[0]

        nd_model = _fill_outside(head["normal_detail"][0].permute(1, 2, 0).numpy(), covered)
        n_d = F.normalize(lookup(nd_model) @ torch.from_numpy(rot.T.astype(np.float32)), dim=-1)
        n_d = torch.where((n_d * n_s).sum(-1, keepdim=True) > 0.2, n_d, n_s)
        albedo_srgb = _fill_outside(head["albedo"][0].permute(1, 2, 0).numpy(), covered)
        albedo = srgb_to_linear(lookup(albedo_srgb).clamp(0, 1))
        occ = cavity_occlusion(disp, covered, (du, dv), cfg.occlusion_radius_mm, 1.0)
        occlusion = lookup(occ[..., None])[..., 0]
        region = lookup(region_map[..., None].astype(np.float32), "nearest")[..., 0].round().to(torch.uint8)

    # --- light -------------------------------------------------------------------------------------------
    sh = torch.from_numpy(random_sh(rng)).float()
    drawn = _random_lights(rng)  # drawn either way: the stream after it stays the same
    lights = drawn if lights is None else [dict(light) for light in lights]
    view = F.normalize(-pos, dim=-1)
    mask_f = inside.float()
    n_d_img = n_d.permute(2, 0, 1)[None]
    irr = sh_irradiance(n_d_img, sh[None]).clamp_min(0)[0] * occlusion[None]  # [3, h, w]
    spec = torch.zeros(3, hh, ww)
    roughness = float(rng.uniform(0.3, 0.6))
    spec_strength = float(rng.uniform(0.4, 1.6))
    pts_lit = pos[inside]
    caster_v = torch.from_numpy(camera.to_camera(caster.mesh.vertices)).float()
    caster_t = torch.from_numpy(caster.mesh.triangles.astype(np.int64))
    # bias (mm): the caster is the unsubdivided face (chords of its ≈ 3.8 mm edges lie up to ≈ 0.1 mm inside the
    # curved surface, its vertices carry the low-passed relief of ≤ 2 mm) plus 1.5 shadow-map texels
    shadow_bias = 1.0 + 1.5 * 250.0 / cfg.shadow_resolution
    key_vis, key_power = torch.ones(hh, ww), -1.0
    for light in lights:
        ldir = torch.tensor(light["direction"], dtype=torch.float32)
        vis = torch.zeros(hh, ww)
        with torch.no_grad():
            vis_pts = _light_visibility(caster_v, caster_t, pts_lit, n_s[inside], ldir, light["radius_deg"],
                                        cfg.shadow_resolution, shadow_bias, backend)
        vis[inside] = vis_pts
        light["lit_fraction"] = round(float(vis_pts.mean()), 4) if len(vis_pts) else 0.0
        if sum(light["rgb"]) > key_power:
            key_vis, key_power = torch.where(inside, vis, torch.ones(())), sum(light["rgb"])
        rgb = torch.tensor(light["rgb"], dtype=torch.float32).view(3, 1, 1)
        cos = (n_d * ldir).sum(-1).clamp_min(0)
        irr = irr + rgb * (cos * vis * occlusion.sqrt())[None]
        lobe = ggx_specular(n_d_img, ldir[None], view.permute(2, 0, 1)[None], roughness)[0, 0]
        spec = spec + rgb * (lobe * vis * occlusion)[None] * spec_strength
    # environment reflection: SH radiance seen in the mirror direction, Schlick-weighted
    n_v = (n_d * view).sum(-1, keepdim=True).clamp(0, 1)
    refl = F.normalize(2 * n_v * n_d - view, dim=-1)
    fres = 0.028 + (1 - 0.028) * (1 - n_v) ** 5
    env_k = float(rng.uniform(0.0, 0.5))
    spec = spec + env_k * spec_strength * (sh_irradiance(refl.permute(2, 0, 1)[None], sh[None])[0].clamp_min(0)
                                           * (fres * occlusion[..., None]).permute(2, 0, 1))
    # subsurface scattering: blur the irradiance inside the face, red farther than green and blue
    sss_scale = float(rng.uniform(0.6, 1.4))
    sss_w = float(rng.uniform(0.3, 0.6))
    blurred = torch.stack([_masked_blur(irr[c], mask_f, s * sss_scale * px_per_mm)
                           for c, s in enumerate((1.0, 0.45, 0.25))])
    irr = (1 - sss_w) * irr + sss_w * blurred
    radiance = (albedo.permute(2, 0, 1) * irr + spec) * mask_f[None]  # [3, h, w] linear

    # --- composite over a background, auto-expose the face ---------------------------------------------------
    face_lum = (radiance.mean(0))[inside]
    key = float(torch.quantile(face_lum, 0.6)) if face_lum.numel() else 1.0
    target = float(rng.uniform(0.12, 0.35))
    exposure_stops = float(rng.uniform(-0.7, 0.7))
    gain = target / max(key, 1e-6) * 2**exposure_stops
    bg, bg_info = backgrounds.sample(rng, height, width)
    bg_lin = srgb_to_linear(bg) * rng.uniform(0.5, 1.3) * 2**exposure_stops
    img = bg_lin.astype(np.float32)
    face = np.zeros((hh, ww, 3), np.float32)
    rad_np = (radiance.permute(1, 2, 0).numpy() * gain).astype(np.float32)
    ins = inside.numpy()
    if ins.any():
        _, (ri, ci) = ndimage.distance_transform_edt(~ins, return_indices=True)
        face = rad_np[ri, ci]
    alpha = np.clip(ndimage.gaussian_filter(ins.astype(np.float32), 0.6) * 1.6 - 0.3, 0, 1)
    alpha = np.maximum(alpha, ins * 0.999)
    sub = img[win[1]:win[3], win[0]:win[2]]
    img[win[1]:win[3], win[0]:win[2]] = alpha[..., None] * face + (1 - alpha[..., None]) * sub

    # --- camera: blur, white balance, noise, sRGB, resolution loss, JPEG ----------------------------------
    cam_fx: dict = {"exposure_stops": round(exposure_stops, 3), "key_target": round(target, 4)}
    sigma = float(rng.uniform(0.0, 1.0)) + (float(rng.uniform(0.5, 1.5)) if rng.random() < 0.15 else 0.0)
    cam_fx["blur_sigma_px"] = round(sigma, 3)
    on = cfg.camera_effects  # when off, every draw below is still made, so nothing else in the sample changes
    if not on:
        cam_fx["applied"] = False
    x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    x = (gaussian_blur(x, sigma) if on else x)[0].numpy().transpose(1, 2, 0)
    wb = np.exp(rng.normal(0, 0.06, 3))
    wb /= wb[1]
    cam_fx["white_balance"] = np.round(wb, 4).tolist()
    x = np.clip(x, 0, 1) * (wb if on else 1.0)
    shot, read = float(rng.uniform(0, 0.004)), float(rng.uniform(0, 0.0003))
    cam_fx["noise"] = {"shot": round(shot, 5), "read": round(read, 6)}
    noise = sensor_noise(rng, x, shot, read)
    x = x + noise if on else x
    srgb = linear_to_srgb(x)
    out = Image.fromarray((srgb * 255 + 0.5).astype(np.uint8))
    if rng.random() < 0.3:
        k = float(rng.uniform(1.2, 2.0))
        small = (max(int(width / k), 16), max(int(height / k), 16))
        if on:
            out = out.resize(small, Image.Resampling.BILINEAR).resize((width, height), Image.Resampling.BILINEAR)
        cam_fx["resolution_loss"] = round(k, 3)
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    cam_fx["jpeg_quality"] = quality
    if cfg.lossless_fraction > 0 and rng.random() < cfg.lossless_fraction:
        cam_fx["jpeg_quality"] = None  # kept lossless
    jpeg = on and cam_fx["jpeg_quality"] is not None
    image = jpeg_roundtrip(np.asarray(out.convert("RGB")), quality) if jpeg else np.asarray(out.convert("RGB"))

    # --- per-pixel GT over the whole photo ------------------------------------------------------------------
    def full(a: np.ndarray, fill) -> np.ndarray:
        o = np.full((height, width) + a.shape[2:], fill, a.dtype)
        o[win[1]:win[3], win[0]:win[2]] = a
        return o

    gt_uv = np.where(ins[..., None], uv_px[0].numpy(), np.nan).astype(np.float32)
    tri_id = (rast[0, ..., 3].round().long() - 1).numpy().astype(np.int32)
    lm = np.full((68, 2), np.nan, np.float32)
    ok = lm_ids >= 0
    lm[ok] = camera.project(camera.to_camera(verts[lm_ids[ok]]))
    params = {
        "pose_deg": {"yaw": round(yaw, 3), "pitch": round(pitch, 3), "roll": round(roll, 3)},
        "face_width_px": round(face_px, 2), "image_size": [height, width], "fov_deg": round(float(np.rad2deg(fov)), 3),
        "distance_mm": round(float(dist), 2), "px_per_mm": round(float(px_per_mm), 4), "mesh_levels": levels,
        "mesh_triangles": int(len(baked.mesh.triangles)), "mesh_prefilter_sigma_mm": round(sigma_mm, 4),
        "texture_filter": cfg.texture_filter,
        "sh": np.round(sh.numpy().astype(float), 5).tolist(), "lights": lights,
        "specular": {"roughness": round(roughness, 4), "strength": round(spec_strength, 4), "env": round(env_k, 4)},
        "subsurface": {"scale": round(sss_scale, 4), "weight": round(sss_w, 4),
                       "sigma_mm_rgb": [round(s * sss_scale, 4) for s in (1.0, 0.45, 0.25)]},
        "background": bg_info, "camera_effects": cam_fx,
    }
    return RenderedPhoto(
        image=image, camera=camera, face_mask=full(ins, False), gt_uv=full(gt_uv, np.nan),
        normal_detail=full(np.where(ins[..., None], n_d.numpy(), 0).astype(np.float32), 0.0),
        normal_smooth=full(np.where(ins[..., None], n_s.numpy(), 0).astype(np.float32), 0.0),
        region=full(np.where(ins, region.numpy(), 0).astype(np.uint8), 0), landmarks_px=lm, baked=baked,
        tri_id=full(tri_id, -1), params=params, shadow=full(key_vis.numpy().astype(np.float32), 1.0))


def _light_visibility(verts, tri, points, normals, ldir, radius_deg, resolution, bias, backend) -> torch.Tensor:
    """Shadow-map visibility of a (disc) light at ``points [N, 3]`` with a fixed bias in mm."""
    from fds.render.shadows import cone_directions, shadow_map

    if len(points) == 0:
        return torch.zeros(0)
    dirs = cone_directions(ldir, math.radians(radius_deg), 3 if radius_deg > 0 else 1)
    vis = torch.zeros(len(points))
    for d in dirs:
        vis += shadow_map(verts, tri, d, resolution, backend=backend).visibility(points, normals, bias=bias)
    return vis / len(dirs)


def _masked_blur(x: torch.Tensor, mask: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of ``x [h, w]`` that only mixes values inside ``mask`` (normalised convolution)."""
    if sigma_px <= 0.3:
        return x
    num = gaussian_blur((x * mask)[None, None], sigma_px)[0, 0]
    den = gaussian_blur(mask[None, None], sigma_px)[0, 0]
    return torch.where(mask > 0, num / den.clamp_min(1e-6), x)


__all__ = ["PHOTO_REGIONS", "PhotoConfig", "RenderedPhoto", "SurfaceHits", "camera_ray_hits", "photo_region_labels",
           "render_photo", "rotation_ypr"]
