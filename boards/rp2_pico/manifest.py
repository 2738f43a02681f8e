# Freeze manifest for the reference board (RP2040 Pico):
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=$PWD/boards/rp2_pico/manifest.py
# Paths are relative to this file. The application and the drivers come from
# their own manifests (flat modules, as the unix board imports them); this
# board adds its pin map (board.py) and main.py, which boots the app.
import os

include("$(PORT_DIR)/boards/manifest.py")
include("../../firmware")
include("../../drivers")

for _name in sorted(os.listdir(".")):
    if _name.endswith(".py") and _name != "manifest.py":
        module(_name)
