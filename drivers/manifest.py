# The asyncio hardware drivers, frozen as flat modules beside the
# application; a board's manifest.py includes this next to
# firmware/manifest.py. No metadata() here: outside require(), makemanifest
# allows one per build, and firmware/manifest.py's describes the whole.
import os

for _name in sorted(os.listdir(".")):
    if _name.endswith(".py") and _name != "manifest.py":
        module(_name)
