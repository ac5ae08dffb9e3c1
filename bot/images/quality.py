"""Cheap photo-quality checks on a small greyscale preview: sharpness, exposure and resolution.

Sharpness is the variance of a 3x3 Laplacian on a preview at most 1000 px long (the preview size is
fixed so the number depends little on the camera's resolution). Fine detail and crisp edges give large
Laplacian responses; a defocused or shaken photo has none. The filter output is offset by 128 and
clipped to 0-255 by Pillow, which only flattens very strong edges, far above the threshold.

Thresholds, and why (to be recalibrated on consented sample photos, see the report):
- BLURRED below a variance of 60. The usual rule of thumb for this measure is 100; a lower bar errs
  toward "send anyway" for smooth, evenly lit skin, which has little texture even when in focus.
  Generated scenes measure 600-5000 when sharp (640 x 480 to 4000 x 3000) and 2-16 after a radius-8
  Gaussian blur.
- TOO_DARK below a mean luminance of 40, TOO_BRIGHT above 220 (0-255). A camera's auto-exposure aims
  for a mid grey near 118; a plain white background metered correctly sits near 200. Below 40 or above
  220 most of the picture is crushed into shadow or blown out, and detail is lost.
- BLURRED is not reported for a badly exposed photo: there is no detail to measure in near-black or
  near-white, and the patient should get the one instruction that helps (more or less light).
- TOO_SMALL when the shorter side is under `Limits.min_side`.
"""

from PIL import Image, ImageFilter, ImageStat

from bot.images.model import Limits, QualityIssue, QualityReport

BLUR_THRESHOLD = 60.0
DARK_THRESHOLD = 40.0
BRIGHT_THRESHOLD = 220.0
LAPLACIAN = ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), scale=1, offset=128)


def measure_sharpness(preview: Image.Image) -> float:
    """Variance of the Laplacian of an "L" preview: higher is sharper."""
    width, height = preview.size
    if width < 3 or height < 3:
        return 0.0
    # Pillow copies the one-pixel border unfiltered; it would count as edges, so it is left out.
    laplacian = preview.filter(LAPLACIAN).crop((1, 1, width - 1, height - 1))
    return float(ImageStat.Stat(laplacian).var[0])


def measure_brightness(preview: Image.Image) -> float:
    """Mean luminance (0-255) of an "L" preview."""
    return float(ImageStat.Stat(preview).mean[0])


def assess_quality(preview: Image.Image, width: int, height: int, limits: Limits) -> QualityReport:
    """The quality issues of a photo of `width` x `height` pixels, measured on its preview."""
    sharpness = measure_sharpness(preview)
    brightness = measure_brightness(preview)
    issues: list[QualityIssue] = []
    if brightness < DARK_THRESHOLD:
        issues.append(QualityIssue.TOO_DARK)
    elif brightness > BRIGHT_THRESHOLD:
        issues.append(QualityIssue.TOO_BRIGHT)
    elif sharpness < BLUR_THRESHOLD:
        issues.append(QualityIssue.BLURRED)
    if min(width, height) < limits.min_side:
        issues.append(QualityIssue.TOO_SMALL)
    return QualityReport(tuple(issues), sharpness, brightness, width, height)
