"""CPython stand-in for MicroPython's `micropython` module, so firmware modules
import unchanged under CPython in tests and host tools."""


def const(x):
    return x


def _identity(f):
    return f


native = viper = _identity


def mem_current():
    return 0
