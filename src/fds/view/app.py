"""The interactive viewer: a local ``viser`` server (its browser client ships inside the viser wheel, so it
works offline) showing the proxy and detailed meshes of an inference run.

Controls (side panel): which face (or all in a row), proxy / detailed / side by side, the surface colour
(photo texture, plain clay, tangent normal map, displacement heat map), a displacement scale (0–2×), the
light's azimuth, elevation and intensity, and the face's numbers from ``result.json``. Orbit with the left
mouse button, pan with the right, zoom with the wheel.

Each GUI control calls a method of :class:`FaceViewer` (``set_face``, ``set_mode``, …), so a script or a
test drives the same code the panel does. Frames: the scene is y-up metres (the model frame scaled by 1/1000
and centred per face); a face's front looks down +z.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fds.view.faces import (
    DISPLAY_MAX_TRIANGLES,
    DisplayMesh,
    FaceData,
    find_faces,
    heat_map,
    load_face,
    summary_markdown,
)

log = logging.getLogger(__name__)

MODES = ("detailed", "proxy", "side by side")
COLOURS = ("photo", "clay", "normal map", "displacement")
ALL = "all faces"
CLAY_RGBA = (205, 180, 165, 255)
# a narrow field of view: side by side, a wide one shows the left face from its right and the right one from
# its left, so under one light they look differently lit although only the displacement differs
CAMERA_FOV_RAD = float(np.radians(30.0))
FACE_SPACING_M = 0.24  # between faces in "all faces" and between proxy and detail side by side
FACE_HALF_HEIGHT_M = 0.14  # half a face's height with its label below
PANEL_FRACTION = 0.27  # of a wide window's width, covered by the control panel on the right


@dataclass
class _Face:
    data: FaceData
    mesh: DisplayMesh
    heat: np.ndarray
    heat_limit_mm: float
    glb_cache: dict = field(default_factory=dict)


def _glb(mesh: DisplayMesh, scale: float, image: np.ndarray | None) -> bytes:
    """A glTF binary of ``mesh`` displaced by ``scale``× with ``image`` (uint8 RGB, UV space) as base colour
    (clay when None), per-vertex normals shared across UV seams."""
    import trimesh
    from PIL import Image

    v = mesh.vertices(scale)
    st = np.stack([mesh.uv[:, 0], 1.0 - mesh.uv[:, 1]], axis=1)  # glTF loaders (trimesh) flip t again
    if image is None:
        material = trimesh.visual.material.PBRMaterial(baseColorFactor=CLAY_RGBA, metallicFactor=0.0,
                                                       roughnessFactor=0.65)
    else:
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(image),
                                                       metallicFactor=0.0, roughnessFactor=0.65)
    tm = trimesh.Trimesh(v, mesh.triangles, vertex_normals=mesh.shading_normals(scale),
                         visual=trimesh.visual.TextureVisuals(uv=st, material=material), process=False)
    buf = io.BytesIO()
    tm.export(buf, file_type="glb", include_normals=True)  # else three.js falls back to flat shading
    return buf.getvalue()


class FaceViewer:
    """A viser server showing the faces under ``folder`` (an inference output folder or one face's folder)."""

    def __init__(self, folder: str | Path, host: str = "127.0.0.1", port: int = 8080,
                 max_triangles: int = DISPLAY_MAX_TRIANGLES):
        import viser

        self.folders = find_faces(folder)
        self.max_triangles = max_triangles
        self._faces: dict[str, _Face] = {}
        self._lock = threading.RLock()
        self._syncing = False
        self.face = self.folders[0].name
        self.mode, self.colour, self.scale = "side by side", "photo", 1.0
        self.light = (30.0, 25.0, 2.5)  # azimuth°, elevation°, intensity
        self.server = viser.ViserServer(host=host, port=port, label="fds viewer", verbose=False)
        self.port = self.server.get_port()
        self._setup_scene()
        self._setup_gui()
        self._redraw()
        self.reset_camera()

    # ------------------------------------------------------------------------------------------ loading
    def _load(self, name: str) -> _Face:
        with self._lock:
            if name not in self._faces:
                t = time.perf_counter()
                folder = next(f for f in self.folders if f.name == name)
                data = load_face(folder)
                mesh = data.display_mesh(self.max_triangles)
                heat, limit = heat_map(data.displacement_mm)
                self._faces[name] = _Face(data, mesh, heat, limit)
                log.info("loaded %s (%d display triangles) in %.1f s", name, len(mesh.triangles),
                         time.perf_counter() - t)
            return self._faces[name]

    def _image(self, face: _Face) -> np.ndarray | None:
        if self.colour == "photo":
            return face.data.texture
        if self.colour == "normal map":
            return face.data.normal_map
        if self.colour == "displacement":
            return face.heat
        return None

    # ------------------------------------------------------------------------------------------ scene
    def _setup_scene(self) -> None:
        scene = self.server.scene
        scene.set_up_direction("+y")
        scene.configure_default_lights(enabled=False)
        scene.configure_environment_map(hdri=None)
        scene.add_light_ambient("/light/ambient", intensity=0.35)
        self._sun = scene.add_light_directional("/light/sun", intensity=self.light[2], cast_shadow=False)
        self._place_light()

        @self.server.on_client_connect
        def _(client) -> None:
            self.reset_camera(client)

    def _place_light(self) -> None:
        """The directional light shines from (azimuth, elevation) towards the origin: azimuth 0 = from the
        front (+z), positive to the face's left (+x); elevation positive = from above."""
        az, el, intensity = np.radians(self.light[0]), np.radians(self.light[1]), self.light[2]
        d = np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
        self._sun.position = (float(d[0]), float(d[1]), float(d[2]))
        self._sun.intensity = float(intensity)

    def _shown_faces(self) -> list[str]:
        return [f.name for f in self.folders] if self.face == ALL else [self.face]

    def _camera_pose(self, aspect: float) -> tuple[float, float]:
        """(x, z) in metres of a camera looking straight down −z at the shown meshes: far enough that they fit
        the part of the view left of the control panel, shifted so they sit in the middle of that part."""
        columns = len(self._shown_faces()) * (2 if self.mode == "side by side" else 1)
        half_width = max(columns, 1) * FACE_SPACING_M / 2
        tan = float(np.tan(CAMERA_FOV_RAD / 2))
        free = 1.0 - PANEL_FRACTION  # of the view's width
        z = 0.05 + max(half_width / (0.95 * free * tan * aspect), FACE_HALF_HEIGHT_M / (0.9 * tan))
        return PANEL_FRACTION * tan * aspect * z, z

    def reset_camera(self, client=None) -> None:
        """Look at the shown meshes from the front (+z); new browser tabs start there too."""
        initial = self.server.initial_camera
        x, z = self._camera_pose(16 / 10)
        initial.fov = CAMERA_FOV_RAD
        initial.up = (0.0, 1.0, 0.0)
        initial.position = (x, 0.0, z)
        initial.look_at = (x, 0.0, 0.0)
        clients = [client] if client is not None else list(self.server.get_clients().values())
        for c in clients:
            x, z = self._camera_pose(max(float(c.camera.aspect), 0.2))
            with c.atomic():  # position first: setting it moves look_at along (viser's orbit convention)
                c.camera.fov = CAMERA_FOV_RAD
                c.camera.up_direction = (0.0, 1.0, 0.0)
                c.camera.position = (x, 0.0, z)
                c.camera.look_at = (x, 0.0, 0.0)

    def _redraw(self) -> None:
        """(Re)send every shown mesh for the current face, mode, colour and scale."""
        with self._lock:
            scene = self.server.scene
            names = self._shown_faces()
            scene.remove_by_name("/faces")
            kinds = {"detailed": ["detailed"], "proxy": ["proxy"], "side by side": ["proxy", "detailed"]}[self.mode]
            columns = [(n, k) for n in names for k in kinds]
            x0 = -(len(columns) - 1) / 2 * FACE_SPACING_M
            for i, (name, kind) in enumerate(columns):
                face = self._load(name)
                scale = self.scale if kind == "detailed" else 0.0
                key = (self.colour, round(scale, 4))
                if key not in face.glb_cache:
                    face.glb_cache.clear()  # keep one GLB per face: they are large
                    face.glb_cache[key] = _glb(face.mesh, scale, self._image(face))
                x = x0 + i * FACE_SPACING_M
                scene.add_glb(f"/faces/{name}/{kind}", face.glb_cache[key], position=(x, 0, 0),
                              cast_shadow=False, receive_shadow=False)
                if len(columns) > 1:
                    label = kind if len(names) == 1 else f"{name} ({kind})"
                    scene.add_label(f"/faces/{name}/{kind}_label", label, position=(x, -0.13, 0))
            if hasattr(self, "_numbers"):
                text = "\n\n---\n\n".join(summary_markdown(self._faces[n].data, self._faces[n].mesh) for n in names)
                if self.colour == "displacement":
                    limits = ", ".join(f"±{self._faces[n].heat_limit_mm:.3f} mm" for n in names)
                    text += f"\n\nHeat map: blue inward, white 0, red outward, saturated at {limits}."
                self._numbers.content = text

    # ------------------------------------------------------------------------------------------ controls
    # Each setter updates the state, then the panel's control (whose callback sees no change and returns),
    # then the scene; the panel's callbacks call the same setters.
    def _sync(self, key: str, value) -> None:
        handle = getattr(self, "_gui", {}).get(key)
        if handle is not None and handle.value != value:
            self._syncing = True  # the control's callback must not act on a value the code set
            try:
                handle.value = value
            finally:
                self._syncing = False

    def set_face(self, name: str) -> None:
        if name != ALL and name not in {f.name for f in self.folders}:
            raise ValueError(f"no face {name!r}; the faces are {[f.name for f in self.folders]}")
        if name == self.face:
            return
        self.face = name
        self._sync("face", name)
        self._redraw()
        self.reset_camera()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == self.mode:
            return
        self.mode = mode
        self._sync("mode", mode)
        self._redraw()
        self.reset_camera()

    def set_colour(self, colour: str) -> None:
        if colour not in COLOURS:
            raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
        if colour == self.colour:
            return
        self.colour = colour
        self._sync("colour", colour)
        self._redraw()

    def set_scale(self, scale: float) -> None:
        if not 0.0 <= scale <= 2.0:
            raise ValueError(f"the displacement scale runs from 0 to 2, got {scale}")
        if float(scale) == self.scale:
            return
        self.scale = float(scale)
        self._sync("scale", self.scale)
        if self.mode != "proxy":
            self._redraw()

    def set_light(self, azimuth_deg: float, elevation_deg: float, intensity: float | None = None) -> None:
        self.light = (float(azimuth_deg), float(elevation_deg), self.light[2] if intensity is None else intensity)
        for key, value in zip(("azimuth", "elevation", "intensity"), self.light, strict=True):
            self._sync(key, value)
        self._place_light()

    def _setup_gui(self) -> None:
        gui = self.server.gui
        gui.configure_theme(control_width="medium", show_share_button=False)
        names = [f.name for f in self.folders] + ([ALL] if len(self.folders) > 1 else [])
        face = gui.add_dropdown("Face", names, initial_value=self.face)
        mode = gui.add_dropdown("Show", MODES, initial_value=self.mode)
        colour = gui.add_dropdown("Colour", COLOURS, initial_value=self.colour)
        scale = gui.add_slider("Displacement ×", 0.0, 2.0, 0.05, self.scale)
        with gui.add_folder("Light"):
            az = gui.add_slider("Azimuth °", -180.0, 180.0, 5.0, self.light[0])
            el = gui.add_slider("Elevation °", -90.0, 90.0, 5.0, self.light[1])
            power = gui.add_slider("Intensity", 0.0, 6.0, 0.1, self.light[2])
        reset = gui.add_button("Reset camera")
        self._numbers = gui.add_markdown("")
        self._gui = {"face": face, "mode": mode, "colour": colour, "scale": scale, "azimuth": az, "elevation": el,
                     "intensity": power}

        def user(action):  # a callback for changes made in the browser, not by _sync
            return lambda _: None if self._syncing else action()

        face.on_update(user(lambda: self.set_face(face.value)))
        mode.on_update(user(lambda: self.set_mode(mode.value)))
        colour.on_update(user(lambda: self.set_colour(colour.value)))
        scale.on_update(user(lambda: self._latest(scale, self.set_scale)))
        for s in (az, el, power):
            s.on_update(user(lambda: self.set_light(az.value, el.value, power.value)))
        reset.on_click(lambda _: self.reset_camera())

    def _latest(self, handle, apply) -> None:
        """Apply a slider's value, skipping values already superseded while a redraw ran (dragging)."""
        value = handle.value
        with self._lock:
            if handle.value == value:
                apply(value)

    def stop(self) -> None:
        self.server.stop()


def serve(folder: str | Path, host: str = "127.0.0.1", port: int = 8080,
          max_triangles: int = DISPLAY_MAX_TRIANGLES) -> None:
    """Run the viewer until Ctrl-C."""
    viewer = FaceViewer(folder, host=host, port=port, max_triangles=max_triangles)
    print(f"fds viewer: http://{host}:{viewer.port}  ({len(viewer.folders)} face(s) from {folder}); Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
