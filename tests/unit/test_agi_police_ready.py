"""The `police-ready` FastAGI route: ready only while the backend's AMI link is up (it moves
the call over it); otherwise the dialplan dials 110 into the call by itself."""

from __future__ import annotations

from agi.police_ready import PoliceReadyRoute


class Channel:
    def __init__(self) -> None:
        self.args: list[str] = []
        self.headers = {"agi_channel": "PJSIP/c1001-00000001"}
        self.variables: dict[str, str] = {}

    async def set_variables(self, values: dict[str, str]) -> None:
        self.variables.update(values)


async def test_ready_while_the_ami_link_is_up_else_not() -> None:
    link = {"up": True}
    route = PoliceReadyRoute(ami_connected=lambda: link["up"])
    up = Channel()
    await route(up)  # type: ignore[arg-type]
    link["up"] = False
    down = Channel()
    await route(down)  # type: ignore[arg-type]
    assert (up.variables, down.variables) == ({"HOTLINE_POLICE_READY": "1"},
                                              {"HOTLINE_POLICE_READY": "0"})
