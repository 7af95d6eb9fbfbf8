"""Meshes and maps out: OBJ/PLY writers, displacement baking, previews."""
