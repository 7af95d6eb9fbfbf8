"""Triangle-mesh geometry below both the training data and the exporters (import the modules directly; this
package imports nothing eagerly).

- :mod:`fds.mesh.meshdata`: ``MeshData`` (vertices, triangles, per-corner UVs), reading an OBJ, splitting UV seams.
- :mod:`fds.mesh.bake`: subdivide the proxy and displace it along its normals by a UV displacement map.

The file writers (OBJ, PLY, glTF) are in :mod:`fds.export.mesh_io`.
"""
