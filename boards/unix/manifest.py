# Freeze manifest for a unix-port build with the terminal frozen in
# (the development board runs from source; this is for a self-contained
# binary):  make -C ports/unix FROZEN_MANIFEST=$PWD/boards/unix/manifest.py
# Paths are relative to this file. The application and the drivers come from
# their own manifests; this board adds its own modules (console display and
# keys, TCP card slot, UART over a PTY, terminal.py).
import os

include("$(PORT_DIR)/variants/manifest.py")
include("../../firmware")
include("../../drivers")

for _name in sorted(os.listdir(".")):
    if _name.endswith(".py") and _name != "manifest.py":
        module(_name)
