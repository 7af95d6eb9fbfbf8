"""fds.data — training data: procedural detail scans, in-the-wild photos, scan samples, patches, DataModules.

Modules (import them directly; this package imports nothing heavy):

- ``uvchart``: a face model's UV chart rasterised once (fast per-vertex → UV interpolation, patch zones);
- ``wrinkles``, ``lighting``, ``skin``, ``degrade``, ``procedural``: the procedural scan generator
  (``ProceduralScanGenerator``, ``write_procedural_samples``);
- ``sample_io``: the on-disk sample format (``ScanSample``, ``write_sample``, ``read_sample``);
- ``patches``: preprocessing (HSV V, mean removed, ×2), patch placement, full-map grid;
- ``scans``, ``wild``: datasets of geometry / appearance patches;
- ``datamodules``: ``ScansDataModule``, ``WildDataModule``, ``GeoAppDataModule``;
- ``pca``: the per-region PCA basis builder (artifact read by ``fds.models.pca``).
"""
