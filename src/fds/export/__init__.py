"""Meshes and maps out, one module per job (import them directly; this package imports nothing eagerly).

- :mod:`fds.export.mesh_io`: mesh files: OBJ (+ MTL), PLY, GLB (of a :mod:`fds.mesh.bake` baked mesh).
- :mod:`fds.export.maps`: displacement 16-bit PNG + JSON sidecar + float32 EXR/NPY, 8-bit normal map PNGs.
- :mod:`fds.export.exr`: one-channel float32 OpenEXR files.
- :mod:`fds.export.normal_maps`: metric tangent- and object-space normal maps of a displacement map.
- :mod:`fds.export.previews`: shaded proxy / detailed renders and the preview strip.
"""
