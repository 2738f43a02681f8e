// The production board: no REPL on any port. UART0 is the provisioning
// port (boards/esp32s3/provisioning_port.py), USB is not connected. WebREPL is in
// the port but runs only if webrepl.start() is called: nothing here calls it.
// A development build of the same board sets MICROPY_HW_ENABLE_UART_REPL 1.
#define MICROPY_HW_BOARD_NAME               "Top-up terminal ESP32-S3"
#define MICROPY_HW_MCU_NAME                 "ESP32-S3"

#define MICROPY_HW_ENABLE_UART_REPL         (0)
#define MICROPY_HW_ENABLE_USBDEV            (0)
#define MICROPY_HW_USB_CDC                  (0)
#define MICROPY_HW_ESP_USB_SERIAL_JTAG      (0)
