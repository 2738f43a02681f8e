"""Every prompt the terminal shows, in Chinese and English.

MESSAGES[name] = (zh, en); each language is (title, body, next):
title is one line, body says what happened, next says what the resident (or
technician) should do now. "\\n" forces a line break; {fields} are filled by
screens.py (money in fen, numbers as 12-digit strings, see FIELDS there).

The technician's screens (tech_*) live in messages_tech.py, loaded on
first use (load()): residents' top-ups never carry them in the heap.

tools/build_glyphs.py takes its character set from this file, and
host_tests/test_glyphs.py fails if a message uses a character the glyph
subset lacks or if any message overflows the 128x64 screen.
"""

MESSAGES = {
    # -- resident: normal path --------------------------------------------
    "idle": (
        ("集中充值终端", "{time}", "请插入购电卡"),
        ("Top-up terminal", "{time}", "Please insert your purchase card."),
    ),
    "about": (
        ("关于本终端", "版本 {version}\n终端 {terminal}", "按取消返回"),
        ("About", "Version {version}\nTerminal {terminal}", "Cancel: back"),
    ),
    "history": (
        ("充值记录", "表号 {meter}\n金额 {amount}元\n{time}", "*上一条 取消返回"),
        ("Last top-ups", "Meter {meter}\n¥{amount}\n{time}", "*: older. Cancel: back"),
    ),
    "no_history": (
        ("充值记录", "暂无充值记录", "按取消返回"),
        ("Last top-ups", "No top-ups yet.", "Cancel: back"),
    ),
    "reading": (
        ("正在读卡", "请稍候", "读卡完成前请勿拔卡"),
        ("Reading card", "Please wait.", "Do not remove the card."),
    ),
    "card_info": (
        ("购电信息", "户号 {customer}\n表号 {meter}\n金额 {amount}元", "确认充值，取消退出"),
        ("Your purchase", "Customer {customer}\nMeter {meter}\nAmount ¥{amount}",
         "OK: top up. Cancel: exit"),
    ),
    "progress": (
        ("正在充值", "", "请勿拔卡"),
        ("Topping up", "", "Do not remove the card."),
    ),
    "success": (
        ("充值成功", "已充入 {amount}元\n表内余额 {balance}元", "请取走卡片"),
        ("Top-up done", "Credited ¥{amount}\nBalance ¥{balance}", "Please take your card."),
    ),
    "cancelled": (
        ("已取消", "未向电表充值", "请取走卡片"),
        ("Cancelled", "Nothing was sent to your meter.", "Please take your card."),
    ),
    # -- resident: refusals (each says what to do next) -------------------
    "nothing_to_credit": (
        ("卡内无购电", "此卡没有可充入的金额", "请到供电营业厅购电"),
        ("Nothing to credit", "This card holds no purchase.",
         "Buy credit at the utility office."),
    ),
    "opening_card": (
        ("开户卡", "首次购电须在表上完成", "请到您的电表处插卡"),
        ("Opening card", "A first purchase is made at your meter.",
         "Insert the card at your meter."),
    ),
    "relay_tripped": (
        ("充值成功", "已充入 {amount}元\n电表已断电", "到电表处插卡恢复供电"),
        ("Credit added", "Added ¥{amount}.\nThe power is off.",
         "Insert the card at your meter to restore power."),
    ),
    "meter_not_prepaid": (
        ("非预付费电表", "此表不能在终端充值", "请到供电营业厅处理"),
        ("Not a prepaid meter", "This meter cannot be topped up here.",
         "Ask the utility office."),
    ),
    "meter_in_workflow": (
        ("电表档案未完成", "换表流程尚未归档", "请联系供电营业厅"),
        ("Meter not ready", "The meter's records are not complete.",
         "Ask the utility office."),
    ),
    "topup_unconfirmed": (
        ("充值待确认", "电表未确认本次充值\n不会重复充值", "请稍后重新插卡"),
        ("Not confirmed", "No reply yet. Nothing\nis credited twice.",
         "Insert the card again later."),
    ),
    "card_not_updated": (
        ("充值成功", "已充入电表\n卡片未更新", "请重新插入卡片"),
        ("Credit added", "The meter has it;\nthe card is not updated.",
         "Put the card back in."),
    ),
    "meter_replaced": (
        ("电表已更换", "新表尚未在本终端登记", "请联系供电营业厅登记"),
        ("Meter replaced", "The new meter is not registered here.",
         "Ask the utility office to register it."),
    ),
    "meter_not_opened": (
        ("电表未开户", "新电表须先在表上开户", "请到电表处插卡开户"),
        ("Meter not opened", "A new meter is opened at the meter.",
         "Insert the card at your meter first."),
    ),
    "card_mismatch": (
        ("卡表不符", "户号或表号与记录不符", "请到供电营业厅核对"),
        ("Card mismatch", "Customer or meter number does not match.",
         "Take the card to the utility office."),
    ),
    "already_credited": (
        ("已充值过", "本次购电已在电表中，未重复充值", "请取走卡片"),
        ("Already credited", "This purchase is already in your meter.",
         "Please take your card."),
    ),
    "card_pulled": (
        ("卡片拔出过早", "充值尚未完成", "请重新插入卡片"),
        ("Card removed", "The card came out too early.", "Put the card back in."),
    ),
    "meter_no_answer": (
        ("电表无应答", "暂时无法连接您的电表", "请稍后再试"),
        ("Meter not answering", "Your meter cannot be reached now.",
         "Please try again later."),
    ),
    "count_error": (
        ("购电次数错误", "卡与电表购电次数不符", "请到供电营业厅处理"),
        ("Count error", "Card and meter counts disagree.",
         "Take the card to the utility office."),
    ),
    "card_invalid": (
        ("无效卡", "此卡未通过验证", "请到供电营业厅处理"),
        ("Card not valid", "This card failed the check.",
         "Take the card to the utility office."),
    ),
    "card_superseded": (
        ("旧卡已作废", "此卡已被补发新卡取代", "请使用新卡"),
        ("Old card", "This card was replaced by a new one.", "Please use the new card."),
    ),
    "card_unreadable": (
        ("读卡失败", "无法识别此卡", "请取出卡片重新插入"),
        ("Cannot read card", "The card did not answer.",
         "Take the card out and insert it again."),
    ),
    "meter_unknown": (
        ("非本终端电表", "本终端不管理您的电表", "请到电表处插卡充值"),
        ("Meter not here", "This terminal does not serve your meter.",
         "Insert the card at your meter."),
    ),
    "meter_auth_failed": (
        ("电表认证失败", "电表未在本终端登记\n未向电表充值", "请联系营业厅重新登记"),
        ("Meter not registered", "The meter failed its key check.\nNothing was sent.",
         "Ask for re-registration."),
    ),
    "hoarding_limit": (
        ("超出囤积限额", "电表余额已达上限", "请用电后再充值"),
        ("Balance limit", "Your meter holds the most it may.",
         "Top up again after using power."),
    ),
    "out_of_service": (
        ("终端暂停服务", "终端故障", "请联系物业或营业厅"),
        ("Out of service", "The terminal has a fault.",
         "Please call the utility office."),
    ),
    # -- vendor: factory self-test (firmware/selftest.py; * * 0 on idle) ----
    "selftest_ready": (
        ("工厂自检", "检查存储、密钥、显示\n按键、卡座、RS-485", "确认开始，取消返回"),
        ("Factory self-test", "Storage, keys, display,\nkeypad, card slot, RS-485.",
         "OK: start. Cancel: back"),
    ),
    "selftest_running": (
        ("正在自检", "请稍候", "自检中请勿断电"),
        ("Self-test running", "Please wait.", "Do not switch off."),
    ),
    "selftest_display": (
        ("显示检查", "图案是否完整：\n边框、方格、对角线", "完整按确认，否则取消"),
        ("Display check", "Was the pattern whole:\nborder, squares, diagonals?",
         "OK: yes. Cancel: no"),
    ),
    "selftest_keys": (
        ("按键检查", "请依次按 1 至 9 和 0\n{digits}", "按取消结束"),
        ("Keypad check", "Press 1 to 9, then 0.\n{digits}", "Cancel: stop"),
    ),
    "selftest_pass": (
        ("自检通过", "全部检查通过", "按确认返回"),
        ("Self-test passed", "Every check passed.", "OK: back"),
    ),
    "selftest_fail": (
        ("自检未通过", "有检查未通过，\n详见串口自检报告", "请送回厂家检修"),
        ("Self-test failed", "A check failed: see the\nserial port's report.",
         "Return it for repair."),
    ),
}

LANGS = ("zh", "en")

# Characters that field values can produce (digits, signs, separators,
# the placeholder of unentered digits): they need glyphs too.
FIELD_CHARS = "0123456789-.:_%*"


def load(name=None):
    """Bring in the technician's screens (messages_tech.py adds them to
    MESSAGES) when `name` is one of them, or always with no name. They stay
    out of the heap until a technician card comes."""
    if name is None or (name not in MESSAGES and name.startswith("tech_")):
        import messages_tech  # noqa: F401 - it adds its screens to MESSAGES


def get(name, lang):
    """(title, body, next) for a message; KeyError/ValueError when unknown."""
    if lang not in LANGS:
        raise ValueError("unknown language %r" % (lang,))
    load(name)
    return MESSAGES[name][LANGS.index(lang)]


def charset():
    """Every character the catalogue and field values can put on screen."""
    load()
    seen = set(FIELD_CHARS)
    for pair in MESSAGES.values():
        for parts in pair:
            for s in parts:
                inside = False
                for ch in s:
                    # {field} names are not shown; their values' chars are FIELD_CHARS.
                    if ch == "{":
                        inside = True
                    elif ch == "}":
                        inside = False
                    elif not inside and ch != "\n":
                        seen.add(ch)
    return "".join(sorted(seen))
