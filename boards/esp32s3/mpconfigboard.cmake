# The production board as a MicroPython esp32-port board definition:
#   make -C ports/esp32 BOARD_DIR=/path/to/this/folder
# ESP32-S3, octal PSRAM, no Bluetooth (not used: one radio less to attack),
# the security settings in sdkconfig.board, this folder's partition table
# and freeze manifest.
set(IDF_TARGET esp32s3)

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.240mhz
    boards/sdkconfig.spiram_oct
    ${MICROPY_BOARD_DIR}/sdkconfig.board
)

# The partition table's path must be absolute: this folder is outside the port.
file(WRITE ${CMAKE_BINARY_DIR}/sdkconfig.partitions
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions.csv\"\n")
list(APPEND SDKCONFIG_DEFAULTS ${CMAKE_BINARY_DIR}/sdkconfig.partitions)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
