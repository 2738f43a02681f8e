# Freeze manifest for a unix-port build with the terminal frozen in
# (the development board runs from source; this is for a self-contained
# binary):  make -C ports/unix FROZEN_MANIFEST=$PWD/boards/unix/manifest.py
include("$(PORT_DIR)/variants/manifest.py")
freeze("../../firmware")
freeze("../../drivers")
freeze(".", ("board.py", "uart.py", "card_slot.py", "console_display.py",
             "console_keys.py", "png.py", "terminal.py"))
