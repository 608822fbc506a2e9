"""Every sound a caller can hear, in Mandarin, generated with espeak-ng for the sandbox and
the demo.

Asterisk's packaged sounds are English only, so besides the hotline's own prompts
(``hotline/<name>``) this makes a Mandarin version of the system sounds Asterisk plays
itself: app_queue's position and hold-time announcements, the numbers ``say.c`` speaks for
the ``zh`` language (``digits/…``), what VoiceMail()/Record() say to a caller leaving a
message, ConfBridge's announcements, and the beeps (generated tones, not speech).

Each sound becomes ``<sounds_dir>/<language>/<sound>.wav`` (8 kHz, mono, 16-bit), so the
dialplan plays ``Playback(hotline/welcome)`` on a channel whose language is ``zh`` and
app_queue finds ``zh/queue-thereare.wav``. A manifest in each directory records what each
file was made from; a sound is made again only when its text, the voice or the conversion
changed (or ``force``). The hotline prompts also get an English version (espeak-ng's ``en``
voice) under ``<sounds_dir>/en/hotline/``.

In production admins upload recorded prompts (``hotline.prompts``); these synthetic ones keep
tests and the demo self-contained.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# -- texts ---------------------------------------------------------------------------------
#
# Write what a caller hears in Simplified Chinese. Numbers of three digits or more are read
# digit by digit (12355 → 幺二三五五); a run of "…" is a pause of 0.75 s per character
# ("……" is 1.5 s), for the self-help programmes.

#: The prompts of the default call path (welcome, menu, queue, on-call).
PROMPTS: dict[str, str] = {
    "welcome": "您好，这里是12355青少年服务台。",
    "menu": "心理咨询请按1，法律帮助请按2，如果你有危险或想伤害自己，请按3，人工服务请按0。",
    "invalid": "输入有误，请重新选择。",
    "connecting": "正在为您转接咨询员，请稍候。",
    "crisis-connecting": "请不要挂机，我们马上为您接通专业咨询员。",
    "please-hold": "咨询员正在通话中，请您耐心等待，我们会尽快为您接通。",
    "oncall": "正在为您转接值班人员，请稍候。",
}

#: The other hotline prompts: off hours, the night attendant and its self-help programmes,
#: voicemail, forwarding, the post-call survey and the queue announcements.
SERVICE_PROMPTS: dict[str, str] = {
    "closed": "你好，这里是12355青少年服务台。现在不是人工服务时间，但我们仍然在这里陪着你。",
    "holiday": (
        "你好，这里是12355青少年服务台。今天是法定节假日，人工咨询暂停服务。"
        "如果你正处在危险中，或者有伤害自己的想法，接下来仍然可以马上找到值班老师。"
    ),
    "night-menu": (
        "收听自助放松节目，请按1；给我们留言，请按2，我们第二天会给你回电话；"
        "如果你现在有危险，或者想伤害自己，请按3，值班老师马上接听；"
        "想跟我们说说发生了什么，请按4。"
    ),
    # The night attendant listens (crisis/attendant.py), and where it cannot.
    "attendant-listen": "请说说发生了什么，我们在听。",
    "attendant-unavailable": (
        "现在没有办法听你说。如果你现在有危险，或者想伤害自己，请按3，值班老师马上接听；"
        "返回上一级请按9。"
    ),
    "selfhelp-menu": (
        "考试压力请按1；睡不好觉请按2；跟着做呼吸放松练习请按3；返回上一级请按9。"
        "如果你现在有危险，请按9返回，再按3，值班老师马上接听。"
    ),
    "selfhelp-exam": (
        "考试前感到紧张，是很正常的，这说明你在乎自己的努力。……"
        "先停一停，慢慢吸一口气，再慢慢呼出来。……"
        "把大目标拆成小任务，今天只要做好眼前的一小步就够了。……"
        "复习累了，就站起来活动一下，喝点水。按时吃饭、按时睡觉，比熬夜更有用。……"
        "一次考试，不能决定你是谁，也不能决定你的未来。……"
        "如果压力大到睡不着、吃不下，或者总是想哭，"
        "可以跟信任的大人聊一聊，也可以在服务时间打12355，我们愿意听你说。"
    ),
    "selfhelp-sleep": (
        "睡不着的时候，先别着急，也不用逼自己马上睡着。……"
        "把手机放远一点，让房间暗下来、安静下来。……"
        "平躺下来，放松肩膀，从头到脚，让身体一点一点变沉、变软。……"
        "心里的事情太多，可以在睡前把它们写在纸上，告诉自己：明天再想。……"
        "每天尽量在同一个时间起床，白天晒晒太阳、动一动，晚上会更容易入睡。……"
        "如果很久都睡不好，或者心里一直很难受，记得告诉家人、老师，或者打12355找我们聊聊。"
    ),
    "selfhelp-breathing": (
        "我们一起来做一个呼吸放松练习。找一个舒服的姿势，坐着或者躺着都可以。……"
        "用鼻子慢慢吸气，一，二，三，四。……"
        "轻轻屏住呼吸，一，二。……"
        "用嘴慢慢呼气，一，二，三，四，五，六。……"
        "很好，我们再来一次。慢慢吸气…………"
        "慢慢呼气……………"
        "再来一次。吸气…………"
        "呼气……………"
        "感受一下，肩膀松下来了，心跳也慢了一点。难受的时候，随时可以用这个方法，帮自己平静下来。"
    ),
    "voicemail-greeting": (
        "请在提示音后留言，说说你遇到的事情，并留下方便回电的号码和时间。"
        "我们第二天会给你回电话。说完后直接挂机就可以。"
    ),
    "voicemail-thanks": (
        "谢谢你的留言，我们已经收到了，第二天会有老师给你回电话。如果你遇到危险，请马上拨打110。"
    ),
    "forwarding": "正在为你转接，请不要挂机。",
    "survey-ask": (
        "请为刚才的服务打个分：5分表示非常满意，1分表示很不满意。请按1到5中的一个数字键。"
    ),
    "survey-thanks": "谢谢你的评价，祝你一切都好，再见。",
    "survey-invalid": "请按1到5中的一个数字键。",
    "queue-all-busy": "咨询老师都在通话中，请不要挂机，我们会尽快接听你的电话。",
    "crisis-hold": "请不要挂机，值班老师马上就来。你并不孤单，我们陪着你。",
    "bye": "感谢你的来电，照顾好自己，再见。",
    # What counsellors hear on their own phones (feature codes).
    "seat-logged-in": "已签入，开始接听来电。",
    "seat-logged-out": "已签出，不再接听来电。",
    "seat-paused": "已暂停接听。",
    "seat-unpaused": "已恢复接听。",
    "seat-failed": "操作没有成功，请稍后再试，或联系值班主任。",
    # Callbacks of messages. The counsellor's phone rings first and hears:
    "callback-dialling": "这是留言回拨。正在拨打留言人的电话，对方确认可以安全通话后，将为你接通。",
    "callback-not-reached": "这次没有联系上留言人，系统会稍后再试。",
    # Whoever picks up may not be the caller (a parent, in a family violence case): the
    # greeting does not name the service until they press 1.
    "callback-greeting": "您好，这里是回访电话。如果您之前给我们留过言，并且现在方便通话，请按1。",
    "callback-goodbye": "打扰了，再见。",
    "callback-connected": "谢谢你。这里是12355青少年服务台，老师马上和你通话。",
    # Waiting in a consultation queue: the callback offer, and its confirmation.
    "queue-callback-offer": (
        "咨询老师都在通话中。如果不想继续等待，可以按1，我们会按你现在的排队顺序给你回电话。"
    ),
    "queue-callback-confirmed": "好的，我们会按你的排队顺序尽快给你回电话，请留意来电。再见。",
    # The duty alert chain: what the duty officer's phone says (the caller's number is said
    # digit by digit between duty-alert-caller and duty-alert-ack).
    "duty-alert": "这里是12355青少年服务热线危机警报。",
    "duty-alert-caller": "来电号码：",
    "duty-alert-ack": "确认请按1。",
    "duty-alert-acked": "已确认，请立即处理。",
    # The one-key police alert. The 110 desk alone hears the announcement, before it joins.
    "police-announce": (
        "这里是12355青少年服务台紧急报警。一名来电者可能有生命危险，咨询员仍在线上。"
        "来电号码是："
    ),
    "police-announce-end": "现在为您接通来电者和咨询员。",
    # What the conference hears when the 110 leg is busy or fails.
    "police-retrying": "110线路忙，正在重新拨打，请不要挂机。",
    "police-failed": "110没有接通，值班人员已收到警报。请继续陪伴来电者，或自行拨打110。",
    # The same, when the dialplan dialled 110 alone (the backend unreachable: nobody alerted).
    "police-failed-alone": (
        "110没有接通，系统暂时无法通知值班人员。请继续陪伴来电者，并立即自行拨打110。"
    ),
}

#: Every hotline prompt by its short name (the file is ``hotline/<name>.wav``).
HOTLINE_PROMPTS: dict[str, str] = {**PROMPTS, **SERVICE_PROMPTS}

#: The same prompts in English (espeak-ng's ``en`` voice), so an English channel hears them too.
HOTLINE_PROMPTS_EN: dict[str, str] = {
    "welcome": "Hello, this is the 12355 youth service hotline.",
    "police-announce": (
        "This is an emergency alert from the 12355 youth service hotline. A caller may be in "
        "danger of their life, and a counsellor is on the line. The caller's number is:"
    ),
    "police-announce-end": "Connecting you to the caller and the counsellor now.",
    "police-retrying": "The 110 line is busy. Dialling again, please stay on the line.",
    "police-failed": (
        "110 could not be reached. The duty officer has been alerted. Please stay with the "
        "caller, or dial 110 yourself."
    ),
    "police-failed-alone": (
        "110 could not be reached, and the system cannot alert the duty officer right now. "
        "Please stay with the caller and dial 110 yourself at once."
    ),
    "menu": (
        "For psychological counselling, press 1. For legal help, press 2. "
        "If you are in danger or thinking of hurting yourself, press 3. "
        "To talk to a counsellor, press 0."
    ),
    "invalid": "Sorry, that is not a valid choice. Please try again.",
    "connecting": "Connecting you to a counsellor. Please hold.",
    "crisis-connecting": "Please stay on the line. We are connecting you to a counsellor now.",
    "please-hold": "All counsellors are busy. Please hold, we will answer as soon as we can.",
    "oncall": "Connecting you to the duty officer. Please hold.",
    "closed": (
        "Hello, this is the 12355 youth service hotline. Our counsellors are not available "
        "right now, but we are still here for you."
    ),
    "holiday": (
        "Hello, this is the 12355 youth service hotline. Today is a public holiday and "
        "counselling is closed. If you are in danger or thinking of hurting yourself, "
        "you can still reach the duty officer right away."
    ),
    "night-menu": (
        "For self-help programmes, press 1. To leave a message and be called back tomorrow, "
        "press 2. If you are in danger or thinking of hurting yourself, press 3, and the duty "
        "officer will answer right away. To tell us what is happening, press 4."
    ),
    "attendant-listen": "Please tell us what is happening. We are listening.",
    "attendant-unavailable": (
        "We cannot listen right now. If you are in danger or thinking of hurting yourself, "
        "press 3, and the duty officer will answer right away. To go back, press 9."
    ),
    "selfhelp-menu": (
        "For exam stress, press 1. For sleep, press 2. For a breathing exercise, press 3. "
        "To go back, press 9. If you are in danger, press 9, then 3, to reach the duty officer."
    ),
    "selfhelp-exam": (
        "Feeling nervous before an exam is normal. It shows that you care. ……"
        "Stop for a moment, breathe in slowly, and breathe out slowly. ……"
        "Break big goals into small tasks, and only take the next small step today. ……"
        "When you are tired, stand up, move a little, and drink some water. Regular meals "
        "and sleep help more than staying up late. ……"
        "One exam does not decide who you are, or your future. ……"
        "If the stress keeps you from sleeping or eating, talk to an adult you trust, or "
        "call 12355 during service hours. We are happy to listen."
    ),
    "selfhelp-sleep": (
        "When you cannot sleep, do not force yourself. ……"
        "Put your phone away, and make the room dark and quiet. ……"
        "Lie on your back, relax your shoulders, and let your body grow heavy, from head to "
        "toe. ……"
        "If your mind is busy, write your worries on paper before bed, and tell yourself: "
        "tomorrow. ……"
        "Get up at the same time every day, and get some sunlight and exercise. ……"
        "If you have slept badly for a long time, or you keep feeling low, tell your family, "
        "a teacher, or call 12355 to talk with us."
    ),
    "selfhelp-breathing": (
        "Let us do a breathing exercise together. Sit or lie down comfortably. ……"
        "Breathe in slowly through your nose: one, two, three, four. ……"
        "Hold your breath gently: one, two. ……"
        "Breathe out slowly through your mouth: one, two, three, four, five, six. ……"
        "Good. Once more. Breathe in…………"
        "Breathe out……………"
        "Once more. Breathe in…………"
        "Breathe out……………"
        "Notice how your shoulders relax. Whenever you feel upset, you can use this to calm down."
    ),
    "voicemail-greeting": (
        "After the tone, please tell us what happened, and leave a number and a time we can "
        "call you back. We will call you back tomorrow. When you are done, just hang up."
    ),
    "voicemail-thanks": (
        "Thank you for your message. Someone will call you back tomorrow. If you are in "
        "danger, call 110 now."
    ),
    "forwarding": "Transferring your call. Please stay on the line.",
    "survey-ask": (
        "Please rate our service from 1 to 5. 5 means very satisfied, 1 means not satisfied. "
        "Press one key."
    ),
    "survey-thanks": "Thank you for your rating. Take care, goodbye.",
    "survey-invalid": "Please press a key from 1 to 5.",
    "queue-all-busy": "All counsellors are busy. Please stay on the line, we will answer soon.",
    "crisis-hold": (
        "Please stay on the line. The duty officer is coming. You are not alone, we are "
        "with you."
    ),
    "bye": "Thank you for calling. Take care of yourself. Goodbye.",
    "seat-logged-in": "You are logged in and will receive calls.",
    "seat-logged-out": "You are logged out and will not receive calls.",
    "seat-paused": "Calls are paused.",
    "seat-unpaused": "Calls are resumed.",
    "seat-failed": "That did not work. Please try again later or call the duty supervisor.",
    "callback-dialling": (
        "This is a message callback. Calling the person who left it; you will be connected "
        "once they confirm they can talk safely."
    ),
    "callback-not-reached": "The caller could not be reached this time. We will try again later.",
    "callback-greeting": (
        "Hello, this is a follow-up call. If you left us a message and can talk now, press 1."
    ),
    "callback-goodbye": "Sorry to disturb you. Goodbye.",
    "callback-connected": (
        "Thank you. This is the 12355 youth service line; a counsellor will talk with you now."
    ),
    "queue-callback-offer": (
        "All counsellors are busy. If you would rather not wait, press 1: we will call you "
        "back in your turn."
    ),
    "queue-callback-confirmed": (
        "We will call you back in your turn as soon as we can. Please keep your phone close. "
        "Goodbye."
    ),
    "duty-alert": "This is a crisis alert from the 12355 youth service hotline.",
    "duty-alert-caller": "The caller's number is:",
    "duty-alert-ack": "Press 1 to confirm.",
    "duty-alert-acked": "Confirmed. Please act now.",
}



@dataclass(frozen=True)
class Tone:
    """A generated tone instead of speech: (frequency in Hz, milliseconds) steps, 0 Hz = silence."""

    steps: tuple[tuple[int, int], ...]


def _tone(*steps: tuple[int, int]) -> Tone:
    return Tone(steps=tuple(steps))


#: The numbers ``say.c`` speaks for the ``zh`` language (ast_say_number_full_zh): digits,
#: tens (digits/20 then digits/5 for 25), hundred, thousand, 万 and 亿, and minus.
DIGIT_SOUNDS: dict[str, str] = {
    **{f"digits/{n}": text for n, text in enumerate("零一二三四五六七八九")},
    "digits/10": "十",
    **{f"digits/{n * 10}": f"{text}十" for n, text in enumerate("二三四五六七八九", start=2)},
    "digits/hundred": "百",
    "digits/thousand": "千",
    "digits/wan": "万",
    "digits/yi": "亿",
    "digits/minus": "负",
}

#: app_queue (Asterisk 22, apps/app_queue.c): "你现在排在第 | 3 | 位", "预计还需要等候 | 2 |
#: 分钟". queue-reporthold is said to the counsellor (reportholdtime).
QUEUE_SOUNDS: dict[str, str] = {
    "queue-youarenext": "你是下一位，咨询老师马上就来。",
    "queue-thereare": "你现在排在第",
    "queue-callswaiting": "位，请稍候。",
    "queue-quantity1": "现在排队等候的人超过",
    "queue-quantity2": "位，请耐心等候。",
    "queue-holdtime": "预计还需要等候",
    "queue-less-than": "不到",
    "queue-minute": "分钟",
    "queue-minutes": "分钟",
    "queue-seconds": "秒",
    "queue-thankyou": "谢谢你的耐心等待。",
    "queue-reporthold": "来电已等候",
    "queue-periodic-announce": "咨询老师都在通话中，请不要挂机，我们会尽快接听你的电话。",
}

#: What VoiceMail() and Record() say to a caller leaving a message (apps/app_voicemail.c).
VOICEMAIL_SOUNDS: dict[str, str] = {
    "vm-intro": "请在提示音后留言，说完后挂机或按井号键。",
    "vm-theperson": "你要找的分机",
    "vm-isunavail": "暂时无人接听。",
    "vm-isonphone": "正在通话中。",
    "vm-extension": "分机",
    "vm-whichbox": "请输入要留言的信箱号码。",
    "vm-leavemsg": "留言请按5。",
    "vm-review": "确认留言请按1，重听请按2，重新录音请按3。",
    "vm-review-urgent": "标记为紧急请按4。",
    "vm-review-nonurgent": "取消紧急标记请按4。",
    "vm-marked-urgent": "留言已标记为紧急。",
    "vm-marked-nonurgent": "已取消紧急标记。",
    "vm-torerecord": "重新录音请按3。",
    "vm-tocancel": "或按井号键取消。",
    "vm-star-cancel": "取消请按星号键。",
    "vm-then-pound": "然后按井号键。",
    "vm-saveoper": "确认留言请按1，否则请继续等候。",
    "vm-reachoper": "转人工服务请按0。",
    "vm-msgsaved": "你的留言已经保存。",
    "vm-mailboxfull": "对不起，留言信箱已满，暂时不能留言。",
    "vm-sorry": "对不起，没有听清你的选择。",
    "vm-pls-try-again": "请再试一次。",
    "vm-message": "留言",
    "vm-goodbye": "再见。",
    "auth-thankyou": "谢谢。",
}

#: ConfBridge's default sounds (apps/confbridge/conf_config_parser.c) and its menus' prompts:
#: heard when a counsellor brings a supervisor or the police desk (110) into the call.
CONFBRIDGE_SOUNDS: dict[str, str] = {
    "conf-onlyperson": "现在通话中只有你一个人。",
    "conf-onlyone": "通话中还有一位参与者。",
    "conf-thereare": "通话中现在有",
    "conf-otherinparty": "位其他参与者。",
    "conf-placeintoconf": "现在为你接入通话。",
    "conf-hasjoin": "已加入通话。",
    "conf-hasleft": "已离开通话。",
    "conf-getpin": "请输入通话密码。",
    "conf-invalidpin": "密码不正确。",
    "conf-kicked": "你已被移出通话。",
    "conf-leaderhasleft": "主持人已离开通话。",
    "conf-waitforleader": "请稍候，主持人加入后通话就会开始。",
    "conf-userswilljoin": "位参与者将加入通话。",
    "conf-userwilljoin": "位参与者将加入通话。",
    "conf-locked": "这个通话已锁定。",
    "conf-lockednow": "通话现在已锁定。",
    "conf-unlockednow": "通话现在已解锁。",
    "conf-muted": "你已静音。",
    "conf-unmuted": "你已取消静音。",
    "conf-now-muted": "所有参与者已静音。",
    "conf-now-unmuted": "所有参与者已取消静音。",
    "conf-errormenu": "选择无效。",
    "conf-usermenu": (
        "静音或取消静音请按1，调节通话音量请按4或6，调节你的音量请按7或9，退出菜单请按8。"
    ),
    "conf-adminmenu": (
        "静音或取消静音请按1，锁定或解锁通话请按2，移出最后加入的人请按3，"
        "调节通话音量请按4或6，调节你的音量请按7或9，退出菜单请按8。"
    ),
    "confbridge-conf-begin": "通话现在开始。",
    "confbridge-binaural-on": "立体声已开启。",
    "confbridge-binaural-off": "立体声已关闭。",
}

#: Beeps: the record tone of VoiceMail()/Record(), ConfBridge's join and leave tones.
TONES: dict[str, Tone] = {
    "beep": _tone((1000, 250)),
    "confbridge-join": _tone((600, 120), (0, 30), (900, 160)),
    "confbridge-leave": _tone((900, 120), (0, 30), (600, 160)),
}

#: Asterisk's own sounds in Mandarin, by sound name (``digits/5``, ``queue-thereare``, …).
SYSTEM_SOUNDS: dict[str, str | Tone] = {
    **DIGIT_SOUNDS, **QUEUE_SOUNDS, **VOICEMAIL_SOUNDS, **CONFBRIDGE_SOUNDS, **TONES,
}

# -- making them ---------------------------------------------------------------------------

#: Mandarin with Latin read as pinyin. Plain ``cmn`` in espeak-ng 1.51 (Debian 12) reads the
#: pinyin its dictionary produces as English words ("你好" sounds like "ni three hao three").
VOICE = "cmn-latn-pinyin"
#: espeak-ng's voice for each language we generate.
VOICES: dict[str, str] = {"zh": VOICE, "en": "en"}
#: Words per minute: faster than espeak-ng's 175 so the menu stays short.
RATE = 190
SAMPLE_RATE = 8000
#: Bump when the conversion changes, so every prompt is made again.
CONVERSION_VERSION = 2
MANIFEST_NAME = ".prompts.json"
#: espeak-ng speaks up to about 10 kHz; at 8 kHz everything above 3.4 kHz would fold back.
_LOWPASS_HZ = 3400
_LOWPASS_PASSES = 2
#: Silence kept at either end after trimming espeak-ng's own (the caller waits for the menu).
_EDGE_SILENCE_MS = 60
#: Loudness of generated tones, and their fade in/out against clicks.
_TONE_DBFS = -9.0
_TONE_FADE_MS = 8
#: A pause in a text: each "…" is this long.
_PAUSE_MS_PER_DOT = 750

_DIGITS = "零幺二三四五六七八九"
_PAUSE = re.compile(r"…+")


class PromptError(RuntimeError):
    """The prompts could not be generated (espeak-ng missing or failing)."""


def display_text(text: str) -> str:
    """The text as a person would read it: a pause of any length is one "……"."""
    return _PAUSE.sub("……", text)


#: What the rules validator may reference without an upload: sound name → Chinese text.
BUILTIN_PROMPTS: dict[str, str] = {
    f"hotline/{name}": display_text(text) for name, text in HOTLINE_PROMPTS.items()
}


def prompt_dir(sounds_dir: Path, language: str = "zh") -> Path:
    return Path(sounds_dir) / language / "hotline"


def spoken_text(text: str, language: str = "zh") -> str:
    """The text as espeak-ng should say it.

    A number of 3+ digits is read digit by digit, the way Chinese speakers say phone numbers
    (12355 -> 幺二三五五), not as a quantity; in English the digits are spaced out. A run of
    "…" becomes an SSML pause of 0.75 s per character (espeak-ng runs with ``-m`` then).
    """
    if language == "zh":
        text = re.sub(r"\d{3,}", lambda m: "".join(_DIGITS[int(d)] for d in m.group(0)), text)
    else:
        text = re.sub(r"\d{3,}", lambda m: " ".join(m.group(0)), text)
    return _PAUSE.sub(lambda m: f'<break time="{_PAUSE_MS_PER_DOT * len(m.group(0))}ms"/>',
                      text)


def prompt_fingerprint(text: str | Tone, *, voice: str = VOICE, rate: int = RATE,
                       language: str = "zh") -> str:
    """What a prompt file is made from; a different fingerprint means make it again."""
    source: dict[str, Any]
    if isinstance(text, Tone):
        source = {"tone": [list(step) for step in text.steps], "dbfs": _TONE_DBFS,
                  "fade": _TONE_FADE_MS}
    else:
        source = {"text": spoken_text(text, language), "voice": voice, "rate": rate}
    source.update(sample_rate=SAMPLE_RATE, conversion=CONVERSION_VERSION)
    encoded = json.dumps(source, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def read_manifest(directory: Path) -> dict[str, str]:
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(key): str(value) for key, value in data.items()}


def write_manifest(directory: Path, manifest: Mapping[str, str]) -> None:
    path = directory / MANIFEST_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(dict(manifest), ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    tmp.replace(path)


def stale_prompts(
    prompts: Mapping[str, str | Tone],
    manifest: Mapping[str, str],
    existing: set[str],
    *,
    voice: str = VOICE,
    rate: int = RATE,
    force: bool = False,
    language: str = "zh",
) -> list[str]:
    """Names of the prompts to make: missing files, changed fingerprints, or all if forced."""
    return [
        name
        for name, text in prompts.items()
        if force
        or name not in existing
        or manifest.get(name) != prompt_fingerprint(text, voice=voice, rate=rate,
                                                     language=language)
    ]


def espeak_command(text: str, output: Path, *, voice: str = VOICE, rate: int = RATE,
                   language: str = "zh") -> list[str]:
    spoken = spoken_text(text, language)
    markup = ["-m"] if "<break " in spoken else []
    return ["espeak-ng", "-v", voice, "-s", str(rate), *markup, "-w", str(output), "--", spoken]


def audio_segment_class() -> Any:
    with warnings.catch_warnings():
        # pydub warns when ffmpeg is missing; WAV in and out needs no ffmpeg.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment
    return AudioSegment


def asterisk_audio(audio: Any, *, trim: bool = True) -> Any:
    """A pydub AudioSegment as Asterisk wants it: 8 kHz, mono, 16-bit, no aliasing, and
    (with ``trim``) no long silence at either end."""
    from pydub.effects import low_pass_filter

    audio = audio.set_channels(1).set_sample_width(2)
    if audio.frame_rate > SAMPLE_RATE:
        for _ in range(_LOWPASS_PASSES):
            audio = low_pass_filter(audio, _LOWPASS_HZ)
    audio = audio.set_frame_rate(SAMPLE_RATE)
    return _trim_silence(audio) if trim else audio


def export_wav(audio: Any, target: Path) -> None:
    """Write a WAV atomically: a reader (Asterisk) never sees half a file."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        audio.export(str(tmp), format="wav")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def convert_to_asterisk_wav(source: Path, target: Path) -> float:
    """Convert a WAV to 8 kHz mono 16-bit PCM for Asterisk; returns the duration in seconds."""
    audio = asterisk_audio(audio_segment_class().from_wav(str(source)))
    export_wav(audio, target)
    return float(audio.duration_seconds)


def make_tone(tone: Tone, target: Path) -> float:
    """Write a generated tone as an Asterisk WAV; returns the duration in seconds."""
    segment = audio_segment_class()
    from pydub.generators import Sine

    audio = segment.silent(duration=0, frame_rate=SAMPLE_RATE)
    for frequency, milliseconds in tone.steps:
        if frequency <= 0:
            step = segment.silent(duration=milliseconds, frame_rate=SAMPLE_RATE)
        else:
            step = Sine(frequency, sample_rate=SAMPLE_RATE, bit_depth=16).to_audio_segment(
                duration=milliseconds, volume=_TONE_DBFS)
            step = step.fade_in(_TONE_FADE_MS).fade_out(_TONE_FADE_MS)
        audio += step
    audio = audio.set_channels(1).set_sample_width(2).set_frame_rate(SAMPLE_RATE)
    export_wav(audio, target)
    return float(audio.duration_seconds)


def _trim_silence(audio: Any) -> Any:
    from pydub.silence import detect_leading_silence

    threshold = audio.dBFS - 40 if audio.dBFS != float("-inf") else -60.0
    start = detect_leading_silence(audio, silence_threshold=threshold)
    end = detect_leading_silence(audio.reverse(), silence_threshold=threshold)
    if start + end >= len(audio):
        return audio
    start = max(0, start - _EDGE_SILENCE_MS)
    end = max(0, end - _EDGE_SILENCE_MS)
    return audio[start : len(audio) - end]


def wav_duration(path: Path) -> float:
    """Seconds of audio in a WAV file."""
    import wave

    with wave.open(str(path), "rb") as handle:
        return handle.getnframes() / float(handle.getframerate())


def speak(text: str, target: Path, *, voice: str = VOICE, rate: int = RATE,
          language: str = "zh") -> float:
    """Say ``text`` with espeak-ng into an Asterisk WAV; returns the duration in seconds."""
    if shutil.which("espeak-ng") is None:
        raise PromptError(
            "espeak-ng is not installed; it makes the Mandarin prompts (apt-get install espeak-ng)"
        )
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmpdir:
        raw = Path(tmpdir) / "raw.wav"
        command = espeak_command(text, raw, voice=voice, rate=rate, language=language)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not raw.exists():
            raise PromptError(f"espeak-ng failed ({result.returncode}): {result.stderr.strip()}")
        return convert_to_asterisk_wav(raw, target)


# -- building sets of sounds ---------------------------------------------------------------


@dataclass(frozen=True)
class PromptGroup:
    """Sounds made into one directory with one manifest (``name`` may hold a ``/``)."""

    directory: Path
    prompts: Mapping[str, str | Tone]
    language: str = "zh"
    voice: str = VOICE
    rate: int = RATE

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.wav"

    def fingerprint(self, name: str) -> str:
        return prompt_fingerprint(self.prompts[name], voice=self.voice, rate=self.rate,
                                  language=self.language)

    def stale(self, force: bool) -> list[str]:
        existing = {name for name in self.prompts if self.path(name).exists()}
        return stale_prompts(self.prompts, read_manifest(self.directory), existing,
                             voice=self.voice, rate=self.rate, force=force,
                             language=self.language)


def prompt_groups(
    sounds_dir: Path,
    *,
    language: str = "zh",
    language_dir: Callable[[str], Path] | None = None,
) -> list[PromptGroup]:
    """What ``hotline prompts build`` makes: the hotline prompts and Asterisk's own sounds in
    ``language`` (Mandarin), and the hotline prompts in English.

    ``language_dir`` maps a language to its directory when ``sounds_dir/<language>`` is not
    simply that (the sandbox's ``en`` is an absolute symlink inside the chroot).
    """
    def directory(lang: str) -> Path:
        return language_dir(lang) if language_dir is not None else Path(sounds_dir) / lang

    groups = [
        PromptGroup(directory(language) / "hotline", HOTLINE_PROMPTS, language,
                    VOICES.get(language, VOICE)),
        PromptGroup(directory(language), SYSTEM_SOUNDS, language, VOICES.get(language, VOICE)),
    ]
    if language != "en":
        groups.append(PromptGroup(directory("en") / "hotline", HOTLINE_PROMPTS_EN, "en",
                                  VOICES["en"], 175))
    return groups


def build_groups(groups: Sequence[PromptGroup], *, force: bool = False,
                 console: Console | None = None) -> list[Path]:
    """Make the sounds of every group that are missing or changed, under one progress bar;
    return the paths of all of them."""
    console = console or Console(stderr=True)
    todo = [(group, name) for group in groups for name in group.stale(force)]
    paths = [group.path(name) for group in groups for name in group.prompts]
    where = ", ".join(str(group.directory) for group in groups)
    if not todo:
        console.print(f"[green]✓[/] {len(paths)} prompts up to date in {where}")
        return paths
    if any(not isinstance(group.prompts[name], Tone) for group, name in todo) and (
            shutil.which("espeak-ng") is None):
        raise PromptError(
            "espeak-ng is not installed; it makes the Mandarin prompts (apt-get install espeak-ng)"
        )
    progress = Progress(
        TextColumn("[bold]prompts[/]"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[detail]}[/]"),
        console=console,
    )
    manifests = {group.directory: read_manifest(group.directory) for group in groups}
    with progress, tempfile.TemporaryDirectory(prefix="hotline-prompts-") as tmpdir:
        task = progress.add_task("", total=len(todo), detail="")
        for group, name in todo:
            progress.update(task, detail=f"{group.language}/{name}")
            target = group.path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            spec = group.prompts[name]
            if isinstance(spec, Tone):
                make_tone(spec, target)
            else:
                raw = Path(tmpdir) / "raw.wav"
                raw.unlink(missing_ok=True)
                command = espeak_command(spec, raw, voice=group.voice, rate=group.rate,
                                         language=group.language)
                result = subprocess.run(command, capture_output=True, text=True, check=False)
                if result.returncode != 0 or not raw.exists():
                    raise PromptError(
                        f"espeak-ng failed for prompt {name!r} ({result.returncode}): "
                        f"{result.stderr.strip()}"
                    )
                convert_to_asterisk_wav(raw, target)
            manifest = manifests[group.directory]
            manifest[name] = group.fingerprint(name)
            write_manifest(group.directory, manifest)
            progress.advance(task)
        progress.update(task, detail="done")
    console.print(f"[green]✓[/] made {len(todo)} of {len(paths)} prompts in {where}")
    return paths


def build_prompts(
    *,
    sounds_dir: Path,
    language: str = "zh",
    force: bool = False,
    console: Console | None = None,
    prompts: Mapping[str, str] | None = None,
    voice: str = VOICE,
    rate: int = RATE,
) -> list[Path]:
    """Make the hotline prompts (``hotline/<name>``) that are missing or changed; return the
    paths of all of them. ``build_all_prompts`` makes the complete set."""
    group = PromptGroup(prompt_dir(sounds_dir, language),
                        HOTLINE_PROMPTS if prompts is None else prompts, language, voice, rate)
    return build_groups([group], force=force, console=console)


def build_all_prompts(
    *,
    sounds_dir: Path,
    language: str = "zh",
    force: bool = False,
    console: Console | None = None,
    language_dir: Callable[[str], Path] | None = None,
) -> list[Path]:
    """Make everything a caller can hear: the hotline prompts and Asterisk's system sounds in
    ``language``, and the hotline prompts in English (see ``prompt_groups``)."""
    groups = prompt_groups(sounds_dir, language=language, language_dir=language_dir)
    return build_groups(groups, force=force, console=console)
