"""DFDN losses as pure functions (the LightningModule applies the weights λ = 100 and η = 0.5).

Displacements are in network units unless the name says ``_mm``; masks are ``[B, 1, H, W]`` in [0, 1].
Every masked mean returns an exact 0 with zero gradient when its mask is empty.
"""

from __future__ import annotations

import kornia
import torch
import torch.nn.functional as F

from fds.metrics import detail_band, detail_normals_xy, normal_error
from fds.render.normals import TexelMM, normals_from_positions
from fds.render.shading import sh_irradiance

GAN_MODES = ("lsgan", "vanilla", "hinge")


def _check_mode(mode: str) -> None:
    if mode not in GAN_MODES:
        raise ValueError(f"gan mode must be one of {GAN_MODES}, got {mode!r}")


def gan_loss_d(real_scores: torch.Tensor, fake_scores: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """Discriminator loss on raw scores (no sigmoid in D), averaged over the patch map; real -> 1, fake -> 0.

    lsgan: ½[(D(real) − 1)² + D(fake)²]; vanilla: ½[BCE(real, 1) + BCE(fake, 0)] on logits;
    hinge: mean(relu(1 − D(real))) + mean(relu(1 + D(fake))).
    """
    _check_mode(mode)
    if mode == "lsgan":
        return 0.5 * (F.mse_loss(real_scores, torch.ones_like(real_scores)) + fake_scores.pow(2).mean())
    if mode == "vanilla":
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
            + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores))
        )
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def gan_loss_g(fake_scores: torch.Tensor, mode: str = "lsgan") -> torch.Tensor:
    """Generator's adversarial loss: lsgan (D(fake) − 1)², vanilla BCE(fake, 1), hinge −D(fake)."""
    _check_mode(mode)
    if mode == "lsgan":
        return F.mse_loss(fake_scores, torch.ones_like(fake_scores))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
    return -fake_scores.mean()


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``values [B, C, H, W]`` over mask-weighted texels and channels; 0 (zero gradient) for an empty mask.

    ``mask`` ``[B, 1, H, W]`` (broadcast over C) or None (all texels).
    """
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype).expand_as(values)
    # where() rather than a product so that non-finite values outside the mask cannot reach the loss value.
    total = torch.where(mask > 0, values * mask, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1.0)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |pred − target| over mask-weighted texels and channels (:func:`masked_mean`).

    ``pred``/``target`` ``[B, C, H, W]``, ``mask`` ``[B, 1, H, W]`` (broadcast over C) or None (all texels).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return masked_mean((pred - target).abs(), mask)


def masked_rms(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
               eps: float = 1e-12) -> torch.Tensor:
    """√(mean (pred − target)²) over mask-weighted texels and channels (:func:`masked_mean`), shapes as
    :func:`masked_l1`. Its optimum under uncertainty is the conditional *mean* (an L1's is the median, which is 0
    wherever a groove is likelier absent than present); its gradient, (pred − target) / RMS, is of the L1's size."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    return (masked_mean((pred - target).square(), mask) + eps).sqrt()


def smooth_target(target: torch.Tensor, sigma_texels: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """GT displacement ``[B, 1, H, W]`` blurred by a Gaussian of ``sigma_texels`` texels (normalised over the mask,
    so texels off the mask do not pull the edge towards 0); ``sigma_texels`` ≤ 0 returns ``target``.

    A photo's unwrap is misregistered by a few texels and has lost the pore scale, so the best any predictor can
    do there is the GT's local average: training against it removes target noise no input explains.
    """
    if sigma_texels <= 0:
        return target
    k = int(2 * round(3 * sigma_texels) + 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return kornia.filters.gaussian_blur2d(t, (k, k), (sigma_texels, sigma_texels), border_type="reflect")

    if mask is None:
        return blur(target)
    m = mask.to(target.dtype)
    return torch.where(m > 0, blur(target * m) / blur(m).clamp_min(1e-6), target)


def smooth_target_varying(target: torch.Tensor, sigma_texels: torch.Tensor, mask: torch.Tensor | None = None,
                          levels_per_octave: int = 2) -> torch.Tensor:
    """GT displacement ``[B, 1, H, W]`` blurred by a Gaussian whose σ varies per texel: ``sigma_texels``
    ``[B, 1, H, W]`` (texels; ≤ 0.25 leaves a texel as it is).

    Each texel takes its value from a stack of masked blurs (:func:`smooth_target`) at σ spaced
    ``levels_per_octave`` per octave, interpolated linearly in log σ between the two levels around its own σ: exact
    where σ is a level, and a smooth blend in between (a photo's footprint changes slowly over a patch).
    """
    if sigma_texels.shape != target.shape:
        raise ValueError(f"sigma_texels {tuple(sigma_texels.shape)} must match target {tuple(target.shape)}")
    if levels_per_octave < 1:
        raise ValueError(f"levels_per_octave must be ≥ 1, got {levels_per_octave}")
    floor = 0.25  # below a quarter texel a Gaussian changes nothing on the texel grid
    widest = min(target.shape[-2:]) / 6  # wider blurs average the whole patch anyway (and outgrow its padding)
    sigma = sigma_texels.detach().float().clamp(floor, max(floor, widest))
    top = float(sigma.max())
    if top <= floor:
        return target
    n = int(torch.ceil(torch.log2(torch.tensor(top / floor)) * levels_per_octave)) + 1
    stack = torch.stack([target] + [smooth_target(target, floor * 2.0 ** (k / levels_per_octave), mask)
                                    for k in range(1, n)])  # [n, B, 1, H, W]; level 0: the target itself
    pos = (torch.log2(sigma / floor) * levels_per_octave).clamp(0, n - 1)  # fractional level [B, 1, H, W]
    lo = pos.floor().long().clamp(max=n - 2)  # n ≥ 2 here
    frac = (pos - lo).to(target.dtype)
    below = stack.gather(0, lo[None]).squeeze(0)
    above = stack.gather(0, (lo + 1)[None]).squeeze(0)
    return below + frac * (above - below)


GEO_NORMS = ("l1", "rms")


def geometry_loss(
    coarse: torch.Tensor, refined: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """L_scans = ‖PCA(PDIM(x)) − y‖ + ‖PDRM(·) − y‖ over the mask, all ``[B, 1, H, W]``: each a mean absolute
    error (``norm="l1"``, the paper) or a root mean square one (``"rms"``, :func:`masked_rms`)."""
    if norm not in GEO_NORMS:
        raise ValueError(f"geometry loss norm must be one of {GEO_NORMS}, got {norm!r}")
    term = masked_l1 if norm == "l1" else masked_rms
    return term(coarse, target, mask) + term(refined, target, mask)


def normal_loss(
    pred_mm: torch.Tensor,
    target_mm: torch.Tensor,
    texel_mm: TexelMM,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Masked mean L1 distance between the metric normal maps of two displacements ``[B, 1, H, W]`` in mm.

    The normals and their comparison are those validation and evaluation score (:func:`fds.metrics.normal_error`,
    Sobel slopes over the texel sizes ``texel_mm``: a pair, ``[B, 2]`` per patch or ``[B, 2, H, W]``), so this
    term trains the quantity the normal-angle metric measures: for small angles, ‖n_pred − n_gt‖₁ grows linearly
    with the angle between them. Unlike an L1 on heights, whose optimum on the mostly flat GT is 0 everywhere, it
    is dominated by the slopes of wrinkle walls.
    """
    return masked_mean(normal_error(pred_mm, target_mm.to(pred_mm.dtype), texel_mm).l1, mask)


def concordance_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                     eps: float = 1e-12) -> torch.Tensor:
    """1 − Lin's concordance correlation ρ_c between two fields ``[B, C, H, W]`` over the masked elements of the
    batch (pooled), ρ_c = 2·cov / (σ_p² + σ_t² + (μ_p − μ_t)²); in [0, 2], 0 only for identical fields.

    Unlike an L1/L2 regression, whose optimum under uncertainty is the conditional median/mean and so shrinks
    detail the input leaves unsure towards 0 (by the correlation itself: a·E[y|x] with a = 1 has RMS ratio
    ρ < 1), ρ_c over predictions a·E[y|x] peaks at a = σ_t / σ_E[y|x], i.e. at an RMS ratio of exactly 1, while
    the pattern (and so the correlation) is the one regression finds. 0 (zero gradient) for an empty mask.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    w = torch.ones_like(pred) if mask is None else (mask > 0).to(pred.dtype).expand_as(pred)
    n = w.sum()
    if n <= 0:
        return (pred * 0).sum()
    p = torch.where(w > 0, pred, torch.zeros_like(pred))
    t = torch.where(w > 0, target.to(pred.dtype), torch.zeros_like(pred))
    mp, mt = p.sum() / n, t.sum() / n
    dp, dt = (p - mp) * w, (t - mt) * w
    cov = (dp * dt).sum() / n
    var_p, var_t = dp.square().sum() / n, dt.square().sum() / n
    return 1.0 - 2.0 * cov / (var_p + var_t + (mp - mt).square() + eps)


def _highpassed_detail_normals(pred_mm: torch.Tensor, target_mm: torch.Tensor, texel_mm: TexelMM,
                               mask: torch.Tensor | None, sigma_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The detail normals (tangent-space x, y; ``[B, 2, H, W]``) of two displacements ``[B, 1, H, W]`` (mm),
    high-passed by ``sigma_high`` texels over ``mask`` (0: not)."""
    p, t = detail_normals_xy(pred_mm, texel_mm), detail_normals_xy(target_mm, texel_mm)
    if sigma_high > 0:
        p, t = detail_band(p, sigma_high, 0.0, mask), detail_band(t, sigma_high, 0.0, mask)
    return p, t


def detail_concordance_loss(
    pred_mm: torch.Tensor,
    target_mm: torch.Tensor,
    texel_mm: TexelMM,
    mask: torch.Tensor | None = None,
    sigma_high: float = 6.0,
) -> torch.Tensor:
    """:func:`concordance_loss` of the detail normals (tangent-space x, y) of two displacements ``[B, 1, H, W]``
    (mm), high-passed by ``sigma_high`` texels (0: not), as the validation's ``detail_r`` / ``amplitude_ratio``
    score them (:mod:`fds.metrics`): trains where the relief is and how much of it, not its mean offset."""
    return concordance_loss(*_highpassed_detail_normals(pred_mm, target_mm, texel_mm, mask, sigma_high), mask)


def detail_nmse_loss(
    pred_mm: torch.Tensor,
    target_mm: torch.Tensor,
    texel_mm: TexelMM,
    mask: torch.Tensor | None = None,
    sigma_high: float = 6.0,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Σ‖p − t‖² / Σ‖t‖² of the high-passed detail normals of two displacements ``[B, 1, H, W]`` (mm), as
    :func:`detail_concordance_loss` forms them, pooled over the masked texels of the batch. Its optimum is the
    conditional mean of those normals, the field whose correlation with the GT is the highest any prediction
    can reach; its RMS ratio is that correlation (< 1). 0 (zero gradient) for an empty mask."""
    p, t = _highpassed_detail_normals(pred_mm, target_mm, texel_mm, mask, sigma_high)
    return masked_mean((p - t).square(), mask) / (masked_mean(t.square(), mask) + eps)


def reconstruct_texture(
    displacement_mm: torch.Tensor,
    position_mm: torch.Tensor,
    normal: torch.Tensor,
    albedo: torch.Tensor,
    sh: torch.Tensor,
) -> torch.Tensor:
    """I_recon = albedo ⊙ SH(N_fine) with P_fine = P_proxy + D·N_proxy and N_fine = F(P_fine), all in UV.

    Args:
        displacement_mm: ``[B, 1, H, W]`` displacement along the proxy normal, mm.
        position_mm: ``[B, 3, H, W]`` proxy positions in the model frame, mm.
        normal: ``[B, 3, H, W]`` unit proxy normals (same frame).
        albedo: ``[B, C, H, W]``; sh: ``[B, C, 9]`` radiance SH, same frame (see ``fds.render.shading``).

    Returns ``[B, C, H, W]``. N_fine comes from central differences of P_fine (``normals_from_positions``).
    """
    for name, t, c in (
        ("position_mm", position_mm, 3),
        ("normal", normal, 3),
        ("displacement_mm", displacement_mm, 1),
    ):
        if t.dim() != 4 or t.shape[1] != c:
            raise ValueError(f"{name} must be [B, {c}, H, W], got {tuple(t.shape)}")
    fine_pos = position_mm + displacement_mm * normal  # [B, 3, H, W]
    fine_normal = normals_from_positions(fine_pos)  # [B, 3, H, W]
    return albedo * sh_irradiance(fine_normal, sh)


def appearance_loss(
    displacement_mm: torch.Tensor,
    position_mm: torch.Tensor,
    normal: torch.Tensor,
    albedo: torch.Tensor,
    sh: torch.Tensor,
    texture: torch.Tensor,
    visibility: torch.Tensor,
) -> torch.Tensor:
    """L_recon = ‖I_input − I_recon‖₁ under the visibility mask (masked mean over texels and channels).

    ``texture`` ``[B, C, H, W]`` in [0, 1] is the unwrapped input photo; ``visibility`` ``[B, 1, H, W]``.
    Returns 0 with zero gradient when the visibility mask is empty.
    """
    recon = reconstruct_texture(displacement_mm, position_mm, normal, albedo, sh)
    return masked_l1(recon, texture.to(recon.dtype), visibility)
