"""One module per panel; each exposes ``add_<name>_panel(server, studio, ...) -> <Name>Panel``,
a dataclass of the panel's handles with a ``refresh`` that writes the studio's state into them."""
