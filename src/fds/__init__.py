"""fds — Facial Details Synthesis.

Data flows photo → proxy (``fds.proxy``) → UV maps (``fds.render``) → network (``fds.models``)
→ displacement / normal maps → detailed meshes (``fds.mesh``), written by ``fds.export``.
"""

__version__ = "0.1.0"
