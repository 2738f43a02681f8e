# The application, as a micropython-lib style package manifest: every module
# in this folder frozen as a flat module (boards import them by plain name).
# MicroPython's tools/makemanifest.py runs this file with this folder as the
# current directory; a board's manifest.py includes it. A module added here
# is frozen without editing this file (host_tests/test_manifest.py checks).
import os

# One version, in version.py, which the firmware shows and stamps on what it
# stores; read as plain text so the manifest needs nothing but this folder.
with open("version.py") as f:
    _version = {}
    exec(f.read(), _version)

metadata(
    description="Concentrated top-up terminal: prepaid meter top-up application",
    version=_version["VERSION"],
    license="MIT",
)

for _name in sorted(os.listdir(".")):
    if _name.endswith(".py") and _name != "manifest.py":
        module(_name)
