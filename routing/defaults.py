"""The default 12355 rule set every new site starts from (DESIGN §4).

Open hours: a welcome, then the main menu — 1 psychological counselling, 2 legal help,
3 "I am in danger" (crisis, top priority), 0 or nothing → a human.
Outside them: the night attendant — 1 self-help programmes (exam stress, sleep,
breathing, each returning to the menu), 2 leave a message for a next-day callback,
3 the crisis route, 4 tell us what is happening: the attendant listens, and a crisis
keyword moves the caller to the crisis route at once (back to the menu otherwise; where
no speech model listens, a menu offering the crisis route by key); a caller who presses
nothing still reaches a human (crisis duty).
"""

from __future__ import annotations

from routing.rules import (
    CrisisNode,
    Hours,
    Interval,
    ListenNode,
    MenuNode,
    OffHours,
    PlayNode,
    QueueNode,
    RuleSet,
    SelfHelpNode,
    VoicemailNode,
    WeeklyHours,
)


def default_rules(*, crisis_queue: str = "crisis", psych_queue: str = "psych",
                  legal_queue: str = "legal", crisis_priority: int = 10,
                  opens: str = "08:00", closes: str = "22:00") -> RuleSet:
    day = Interval(start=opens, end=closes)
    return RuleSet(
        entry="welcome",
        off_hours=OffHours(mode="attendant", entry="night"),
        crisis_priority=crisis_priority,
        hours=Hours(site=WeeklyHours.every_day(day)),
        nodes={
            "welcome": PlayNode(prompt="hotline/welcome", next="main"),
            "main": MenuNode(prompt="hotline/menu", options={
                "1": "psych", "2": "legal", "3": "crisis", "0": "human",
            }, no_input="human", invalid="human", label="主菜单"),
            "psych": QueueNode(queue=psych_queue, label="心理咨询"),
            "legal": QueueNode(queue=legal_queue, label="法律咨询"),
            "human": QueueNode(queue=psych_queue, label="人工服务"),
            "crisis": CrisisNode(queue=crisis_queue, label="危机干预"),
            "night": PlayNode(prompt="hotline/closed", next="night-menu"),
            "night-menu": MenuNode(prompt="hotline/night-menu", options={
                "1": "selfhelp-menu", "2": "voicemail", "3": "crisis", "4": "night-listen",
            }, no_input="crisis", invalid="crisis", label="夜间服务"),
            "night-listen": ListenNode(next="night-menu", crisis="crisis",
                                       unavailable="night-listen-off", label="说说发生了什么"),
            "night-listen-off": MenuNode(prompt="hotline/attendant-unavailable", options={
                "3": "crisis", "9": "night-menu",
            }, no_input="crisis", invalid="crisis", label="夜间服务（无法收听）"),
            "selfhelp-menu": MenuNode(prompt="hotline/selfhelp-menu", options={
                "1": "selfhelp-exam", "2": "selfhelp-sleep", "3": "selfhelp-breathing",
                "9": "night-menu",
            }, no_input="night-menu", invalid="night-menu", label="自助节目"),
            "selfhelp-exam": SelfHelpNode(programme="hotline/selfhelp-exam",
                                          next="selfhelp-menu", label="考试压力"),
            "selfhelp-sleep": SelfHelpNode(programme="hotline/selfhelp-sleep",
                                           next="selfhelp-menu", label="睡眠"),
            "selfhelp-breathing": SelfHelpNode(programme="hotline/selfhelp-breathing",
                                               next="selfhelp-menu", label="呼吸放松"),
            "voicemail": VoicemailNode(label="留言"),
        },
    )
