"""The technician's screens (technician mode: re-registering a replaced
meter), in the catalogue's form (messages.py). Imported on first use by
messages.load(): it adds them to messages.MESSAGES, so the heap of a
terminal that only tops up never holds them.
"""
import messages

messages.MESSAGES.update({
    "tech_pin": (
        ("换表登记", "请输入密码\n{pin}", "确认继续，取消退出"),
        ("Technician", "Type your PIN:\n{pin}", "OK: next. Cancel: exit"),
    ),
    "tech_pin_wrong": (
        ("密码错误", "可再试 {tries} 次", "确认重试，取消退出"),
        ("PIN refused", "{tries} tries left.", "OK: try again. Cancel: exit"),
    ),
    "tech_locked": (
        ("暂停换表登记", "密码错误次数已达上限\n{minutes}分后再试", "请取走卡片"),
        ("Technician locked", "Too many wrong PINs.\nTry in {minutes} minutes.",
         "Please take your card."),
    ),
    "tech_card_blocked": (
        ("卡已停用", "密码错误次数已达上限", "请到供电营业厅处理"),
        ("Card blocked", "Too many wrong PINs.", "Ask the office to unblock it."),
    ),
    "tech_menu": (
        ("换表登记", "1 记录换表\n2 新表登记", "拔卡退出"),
        ("Technician", "1: meter replaced\n2: register new meter", "Pull the card to end."),
    ),
    "tech_customer": (
        ("换表登记", "请输入户号\n{digits}", "确认继续，取消返回"),
        ("Customer", "Customer number:\n{digits}", "OK: next. Cancel: back"),
    ),
    "tech_mark_confirm": (
        ("确认换表", "户号 {customer}\n表号 {meter}", "确认继续，取消返回"),
        ("Mark replaced", "Customer {customer}\nMeter {meter}", "OK: mark. Cancel: back"),
    ),
    "tech_marked": (
        ("已记录换表", "户号 {customer}\n待新表登记", "确认返回"),
        ("Marked replaced", "Customer {customer}\nawaits its new meter.", "OK: back"),
    ),
    "tech_address": (
        ("新表地址", "请输入地址\n{digits}", "确认继续，取消返回"),
        ("Bus address", "New meter's address:\n{digits}", "OK: next. Cancel: back"),
    ),
    "tech_key_kind": (
        ("新表密钥", "1 本终端密钥\n2 密钥包", "取消返回"),
        ("Meter keys", "1: derived keys\n2: key package", "Cancel: back"),
    ),
    "tech_checking": (
        ("正在验证新表", "请稍候", "请勿拔卡"),
        ("Checking meter", "Authenticating the new meter.", "Do not remove the card."),
    ),
    "tech_auth_failed": (
        ("新表验证失败", "密钥不符，未保存", "请核对表号与密钥"),
        ("Meter check failed", "Keys do not match.\nNothing saved.",
         "Check the meter number and keys."),
    ),
    "tech_no_meter": (
        ("新表无应答", "未保存", "请核对新表地址"),
        ("No meter", "No answer.\nNothing saved.", "Check wiring and address."),
    ),
    "tech_package_missing": (
        ("无密钥包", "表号 {meter}", "请先存入密钥包"),
        ("No key package", "None for meter {meter}.", "Put its package in the inbox."),
    ),
    "tech_package_bad": (
        ("密钥包无效", "验证失败，未保存", "请更换密钥包"),
        ("Bad key package", "It fails its check.\nNothing saved.", "Make the package again."),
    ),
    "tech_not_replaced": (
        ("不能登记", "此户未记录换表", "请先记录换表"),
        ("Not replaced", "This meter is not marked replaced.", "Mark it replaced first."),
    ),
    "tech_meter_taken": (
        ("表号已登记", "此表号已在本终端", "请核对表号"),
        ("Meter in use", "That meter is registered here already.", "Check the meter number."),
    ),
    "tech_no_customer": (
        ("无此户号", "本终端无此户号", "请核对户号"),
        ("No such customer", "This terminal has no such customer.",
         "Check the customer number."),
    ),
    "tech_not_saved": (
        ("保存失败", "登记未保存", "请重试"),
        ("Not saved", "The terminal could not save it.", "Please try again."),
    ),
    "tech_meter_number": (
        ("更换电表登记", "请输入新表号\n{digits}", "确认继续，取消退出"),
        ("Meter replacement", "New meter number:\n{digits}", "OK: next. Cancel: exit"),
    ),
    "tech_confirm": (
        ("请确认", "户号 {customer}\n新表号 {meter}", "确认保存，取消返回"),
        ("Confirm new meter", "Customer {customer}\nMeter {meter}",
         "OK: save. Cancel: back"),
    ),
    "tech_done": (
        ("登记完成", "新表号 {meter}", "首次购电请到电表处"),
        ("Meter registered", "Meter {meter}", "First purchase at the meter."),
    ),
})
