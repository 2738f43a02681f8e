# Freeze manifest for the reference board (RP2040 Pico):
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=$PWD/boards/rp2_pico/manifest.py
# Paths are relative to this file. Firmware and drivers are frozen as flat
# modules, as the unix board imports them.
include("$(PORT_DIR)/boards/manifest.py")
freeze("../../firmware")
freeze("../../drivers")
module("board.py")
