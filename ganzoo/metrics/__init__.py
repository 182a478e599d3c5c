"""Evaluation metrics: the FID Inception-v3 (Flax), FID, KID, IS, precision/recall, density/coverage,
L1/PSNR/SSIM.

Public API:
  inception.FeatureExtractor.create(weights_path=None).extract(images_uint8) -> features/logits
  fid.frechet_distance / fid.fid_from_features / fid.feature_statistics
  kid.kernel_inception_distance, inception_score.inception_score,
  prdc.precision_recall, prdc.density_coverage, likelihood.bits_per_dim
  paired.paired_metrics / paired.summarize: L1, PSNR, SSIM of paired image-to-image outputs
  protocol.Protocol, protocol.Reference (a data config at a split), protocol.reference_statistics
  weights.load_params / weights.resolve_weights / `python -m ganzoo.metrics.weights --fetch`
"""
