"""The firmware's version: shown on the "about" screen and stamped on what
the terminal stores. firmware/manifest.py reads it from here, so the frozen
package's metadata and the running firmware always agree (so keep this
file plain Python: the manifest executes it under CPython). Semantic
versioning: bump it in the commit that changes what a board runs."""
VERSION = "0.9.0"
