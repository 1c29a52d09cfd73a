"""Model specifications shipped with paleosim (Paleo-format JSON, extended).

This folder is a package only so that the JSON files travel inside an installed wheel; find them with
``workloads.registry`` rather than by path.
"""
