"""A site's settings as the API takes them: the crisis intervention deadline is minutes
between 5 and a day, or null for the deployment's default; anything else is refused."""

import pytest
from pydantic import ValidationError

from hotline.staffing.schemas import SiteStaffingPatch


def test_a_site_may_set_its_own_crisis_deadline_or_clear_it() -> None:
    assert SiteStaffingPatch(crisis_deadline_minutes=15).model_dump(
        exclude_unset=True) == {"crisis_deadline_minutes": 15}
    assert SiteStaffingPatch.model_validate({"crisis_deadline_minutes": None}).model_dump(
        exclude_unset=True) == {"crisis_deadline_minutes": None}


@pytest.mark.parametrize("value", [0, 4, 24 * 60 + 1, "soon", 12.5, True])
def test_a_nonsense_crisis_deadline_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        SiteStaffingPatch.model_validate({"crisis_deadline_minutes": value})
