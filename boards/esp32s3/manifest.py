# Freeze manifest for the production board (ESP32-S3-WROOM-1-N16R8):
#   make -C ports/esp32 BOARD_DIR=$PWD/boards/esp32s3
# (mpconfigboard.cmake names this file; docs/production-board.md has the
# whole build). Paths are relative to this file. The application and the
# drivers come from their own manifests (flat modules, as the unix board
# imports them); this board adds its pin map (board.py), the provisioning
# port (provisioning_port.py) and main.py, which boots the app. The port's manifest
# brings asyncio and _boot.py (which mounts nothing here: there is no "vfs"
# partition, so it can never format ours).
import os

include("$(PORT_DIR)/boards/manifest.py")
include("../../firmware")
include("../../drivers")

for _name in sorted(os.listdir(".")):
    if _name.endswith(".py") and _name != "manifest.py":
        module(_name)
