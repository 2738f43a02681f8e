"""A 128x64 frame buffer standing in for the ST7565 in micropython test
scripts: the app draws into it; show() only counts the pushes."""
import framebuf


class NullDisplay(framebuf.FrameBuffer):
    def __init__(self):
        self.buf = bytearray(128 * 64 // 8)
        super().__init__(self.buf, 128, 64, framebuf.MONO_VLSB)
        self.pushes = 0

    def show(self):
        self.pushes += 1
