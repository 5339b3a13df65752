"""Names fixed by the protocol and the datasets (PROTOCOL §3): corruptions, severities, checkpoint kinds."""

# The 19 CIFAR-10-C corruptions, in the order of the published records.
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur",
    "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression", "spatter", "saturate",
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

# Checkpoint kinds kept per architecture (PROTOCOL §2).
CHECKPOINT_KINDS: tuple[str, ...] = ("e74", "e89", "last", "best")
